// Role assignments for the app's identity on one existing storage account (a copy
// source or destination), deployed into that account's resource group.

@description('Name of the existing storage account.')
param accountName string

@description('Principal (object) id of the app\'s managed identity.')
param principalId string

@description('Built-in role definition GUIDs to assign on the account.')
param roleDefinitionIds array

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: accountName
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in roleDefinitionIds: {
  name: guid(account.id, principalId, roleId)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

// Role assignments for the app's identity on one existing storage account (a copy
// source or destination), deployed into that account's resource group: on the whole
// account, or only on the named containers.

@description('Name of the existing storage account.')
param accountName string

@description('Principal (object) id of the app\'s managed identity.')
param principalId string

@description('Role definition GUIDs (built-in or custom) to assign.')
param roleDefinitionIds array

@description('Containers to assign the roles on; empty assigns them on the whole account.')
param containers array = []

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: accountName
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in (empty(containers) ? roleDefinitionIds : []): {
  name: guid(account.id, principalId, roleId)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

// Every (container, role) pair when containers are named.
var containerGrants = flatten(map(containers, c => map(roleDefinitionIds, r => {
  container: c
  roleId: r
})))

resource grantContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = [for g in containerGrants: {
  name: '${accountName}/default/${g.container}'
}]

resource containerAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (g, i) in containerGrants: {
  name: guid(grantContainers[i].id, principalId, g.roleId)
  scope: grantContainers[i]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', g.roleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}]

// The function app and what it owns: the Flex Consumption plan, the app's storage
// account (host storage, tracking queue, job records, deployment packages), the
// user-assigned identity and its roles on that account, and monitoring.

param location string
param tags object
param resourceToken string

@description('The user-assigned identity (modules/identity.bicep).')
param identityId string
param identityPrincipalId string
param identityClientId string

@description('Principal id of the identity Event Grid dead-letters with (modules/identity.bicep).')
param eventGridIdentityPrincipalId string
param functionAppRuntimeVersion string
param maximumInstanceCount int
param instanceMemoryMB int

@description('Source and destination accounts: [{ alias, name, ... }] (see main.bicep).')
param extraAccounts array

// App settings (defaults live in main.bicep, taken from internal/app/settings.go).
param statusSchedule string
param queueName string
param recordsContainer string
param sourceSasLifetime string
param firstPoll string
param maxPollInterval string
param startGrace string
param maxFailures string
param pollConcurrency string
param maxCallbackAttempts string
param allowedDestinations string
@description('COPY_ALLOWED_SOURCE_HOSTS as the operator set it; empty: the source accounts and this app\'s account.')
param allowedSourceHosts string

@description('Names of the source accounts (main.bicep sourceAccounts).')
param sourceAccountNames array
param allowHttpSources string
param callbackAllowedHosts string
param copyRules string
param logLevel string

@secure()
@description('Value of the function key "eventgrid" used by Event Grid webhook subscriptions; empty: no key.')
param eventGridFunctionKey string

@description('Days after their last change that job records are deleted (lifecycle management).')
param recordRetentionDays int

@description('Subnet the app is integrated with (delegated to Microsoft.App/environments); empty: no VNet integration.')
param appSubnetId string

@description('BLOBCOPY_TRUST_CLIENT_PRINCIPAL: \'true\' when main.bicep turns App Service Authentication on.')
param trustClientPrincipal string = 'false'

var appName = 'func-blobcopy-${resourceToken}'
var deploymentContainerName = 'app-package-${take(resourceToken, 20)}'
var deadLetterContainerName = 'eventgrid-deadletter'

// Built-in role definitions.
var roles = {
  // Azure Functions documents Storage Blob Data Owner for AzureWebJobsStorage; it also covers the
  // app's records, copies into the app's account (tags/write) and its user-delegation key.
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  // Event Grid writes undeliverable events to the dead-letter container.
  blobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  // The host writes diagnostic events to Table storage.
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  // Application Insights ingestion with Entra ID (local auth is disabled below).
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${resourceToken}'
  location: location
  tags: tags
  properties: {
    retentionInDays: 30
    sku: {
      name: 'PerGB2018'
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${resourceToken}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true
  }
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'st${take(resourceToken, 22)}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // With VNet integration the app reaches its account through private endpoints only.
    publicNetworkAccess: empty(appSubnetId) ? 'Enabled' : 'Disabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: empty(appSubnetId) ? 'Allow' : 'Deny'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource recordsBlobContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: recordsContainer
  properties: {
    publicAccess: 'None'
  }
}

// Event Grid's dead-letter container (undeliverable events, one blob per event batch).
resource deadLetterBlobContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deadLetterContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource deadLetterRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterBlobContainer.id, eventGridIdentityPrincipalId, roles.blobDataContributor)
  scope: deadLetterBlobContainer
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.blobDataContributor)
    principalId: eventGridIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Job records are kept recordRetentionDays after their last change, then deleted.
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-old-job-records'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: [
                '${recordsContainer}/jobs/'
                // Batch records: rewritten by every tracking pass while the batch runs.
                '${recordsContainer}/batches/'
              ]
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: recordRetentionDays
                }
              }
            }
          }
        }
      ]
    }
  }
  dependsOn: [
    recordsBlobContainer
  ]
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource trackingQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: queueName
}

resource poisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${queueName}-poison'
}

// The identity's roles on the app's own account (checked by internal/azstorage/permissions_test.go).
var appStorageRoles = [
  roles.blobDataOwner
  roles.queueDataContributor
  roles.tableDataContributor
]

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in appStorageRoles: {
  name: guid(storage.id, identityId, roleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource monitoringRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identityId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: identityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-${resourceToken}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

// COPY_ACCOUNT_<ALIAS>__*: identity-based settings of every extra account; the app signs
// user-delegation SAS for them.
var accountSettingGroups = [for acct in extraAccounts: [
  {
    name: 'COPY_ACCOUNT_${toUpper(acct.alias)}__blobServiceUri'
    value: 'https://${acct.name}.blob.${environment().suffixes.storage}'
  }
  {
    name: 'COPY_ACCOUNT_${toUpper(acct.alias)}__credential'
    value: 'managedidentity'
  }
  {
    name: 'COPY_ACCOUNT_${toUpper(acct.alias)}__clientId'
    value: identityClientId
  }
]]
var accountSettings = flatten(accountSettingGroups)

// COPY_ALLOWED_SOURCE_HOSTS: what the operator set, or else the blob endpoints of the source
// accounts and of this app's account (same-account copies), so the app copies from nowhere else.
var configuredSourceHosts = join(union(
  ['${storage.name}.blob.${environment().suffixes.storage}'],
  map(sourceAccountNames, n => toLower('${n}.blob.${environment().suffixes.storage}'))
), ',')
var effectiveSourceHosts = !empty(allowedSourceHosts) ? allowedSourceHosts : configuredSourceHosts

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: union(tags, {
    'azd-service-name': 'handler'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    virtualNetworkSubnetId: empty(appSubnetId) ? null : appSubnetId
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      // Flex Consumption takes the worker runtime here: FUNCTIONS_WORKER_RUNTIME must
      // not be an app setting on this plan.
      runtime: {
        name: 'custom'
        version: functionAppRuntimeVersion
      }
    }
    siteConfig: {
      appSettings: concat([
        // The app's own storage, identity-based: no connection string, no key.
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storage.name
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsights.properties.ConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
        {
          name: 'COPY_STATUS_SCHEDULE'
          value: statusSchedule
        }
        {
          name: 'COPY_QUEUE_NAME'
          value: queueName
        }
        {
          name: 'COPY_RECORDS_CONTAINER'
          value: recordsContainer
        }
        {
          name: 'COPY_SOURCE_SAS_LIFETIME'
          value: sourceSasLifetime
        }
        {
          name: 'COPY_FIRST_POLL'
          value: firstPoll
        }
        {
          name: 'COPY_MAX_POLL_INTERVAL'
          value: maxPollInterval
        }
        {
          name: 'COPY_START_GRACE'
          value: startGrace
        }
        {
          name: 'COPY_MAX_FAILURES'
          value: maxFailures
        }
        {
          name: 'COPY_POLL_CONCURRENCY'
          value: pollConcurrency
        }
        {
          name: 'COPY_MAX_CALLBACK_ATTEMPTS'
          value: maxCallbackAttempts
        }
        {
          name: 'COPY_ALLOWED_DESTINATIONS'
          value: allowedDestinations
        }
        {
          name: 'COPY_ALLOWED_SOURCE_HOSTS'
          value: effectiveSourceHosts
        }
        {
          name: 'COPY_ALLOW_HTTP_SOURCES'
          value: allowHttpSources
        }
        {
          name: 'COPY_CALLBACK_ALLOWED_HOSTS'
          value: callbackAllowedHosts
        }
        {
          name: 'COPY_RULES'
          value: copyRules
        }
        {
          name: 'BLOBCOPY_TRUST_CLIENT_PRINCIPAL'
          value: trustClientPrincipal
        }
        {
          name: 'BLOBCOPY_LOG_LEVEL'
          value: logLevel
        }
      ], accountSettings)
    }
  }
  dependsOn: [
    storageRoles
    deploymentContainer
  ]
}

// The host-level function key Event Grid's webhook URL carries (?code=). Created only once the
// operator sets its value: the host must be running to store it.
resource eventGridKey 'Microsoft.Web/sites/host/functionKeys@2024-04-01' = if (!empty(eventGridFunctionKey)) {
  name: '${functionApp.name}/default/eventgrid'
  properties: {
    name: 'eventgrid'
    value: eventGridFunctionKey
  }
}

output functionAppName string = functionApp.name
output functionAppUri string = 'https://${functionApp.properties.defaultHostName}'
output storageAccountName string = storage.name
output storageAccountId string = storage.id
output appInsightsId string = appInsights.id
output deadLetterContainer string = deadLetterBlobContainer.name

// blobcopy on Azure Functions (Flex Consumption, custom handler), provisioned by `azd up`.
//
// Everything authenticates with one user-assigned managed identity: the host's storage
// (AzureWebJobsStorage__*), the deployment container, Application Insights and every
// extra storage account (COPY_ACCOUNT_<ALIAS>__*). No account key, connection string
// with a key, or SAS appears anywhere: the storage account refuses shared-key access.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name; names the resource group and seeds unique names.')
param environmentName string

@minLength(1)
@description('Region of every resource. It must offer the Flex Consumption plan.')
param location string

@description('Resource group to create; default rg-<environmentName>.')
param resourceGroupName string = ''

@description('Flex Consumption runtime stack version of the custom handler stack.')
param functionAppRuntimeVersion string = '1.0'

@minValue(40)
@maxValue(1000)
@description('Largest number of instances the app scales out to.')
param maximumInstanceCount int = 100

@allowed([2048, 4096])
@description('Memory of one instance, in MB.')
param instanceMemoryMB int = 2048

@description('''Accounts the app copies FROM. Each item: { alias: 'src', name: '<storage account name>',
resourceGroup: '<optional, default: this deployment's group>', subscriptionId: '<optional>' }.
The identity gets Storage Blob Data Reader and Storage Blob Delegator (user-delegation SAS) on each,
and the app gets COPY_ACCOUNT_<ALIAS>__blobServiceUri / __credential / __clientId.''')
param sourceAccounts array = []

@description('''Accounts the app copies TO, same shape as sourceAccounts. The identity gets Storage Blob
Data Contributor on each. An account that is both source and destination is listed in both, with the
same alias.''')
param destinationAccounts array = []

// App settings, defaults from the catalogue (internal/app/settings.go).
@description('COPY_STATUS_SCHEDULE: statusfn NCRONTAB schedule.')
param statusSchedule string = '*/30 * * * * *'
@description('COPY_QUEUE_NAME: queue of tracking messages (created here, with <name>-poison).')
param queueName string = 'copyjobs'
@description('COPY_RECORDS_CONTAINER: container of job records (created here).')
param recordsContainer string = 'copyjobs'
@description('COPY_SOURCE_SAS_LIFETIME')
param sourceSasLifetime string = '24h'
@description('COPY_FIRST_POLL')
param firstPoll string = '5s'
@description('COPY_MAX_POLL_INTERVAL')
param maxPollInterval string = '5m'
@description('COPY_START_GRACE')
param startGrace string = '2m'
@description('COPY_MAX_FAILURES')
param maxFailures string = '5'
@description('COPY_POLL_CONCURRENCY')
param pollConcurrency string = '16'
@description('COPY_MAX_CALLBACK_ATTEMPTS')
param maxCallbackAttempts string = '5'
@description('COPY_ALLOWED_DESTINATIONS: comma-separated account/container patterns; empty allows all configured accounts.')
param allowedDestinations string = ''
@description('COPY_ALLOWED_SOURCE_HOSTS: comma-separated source hosts; empty allows any https host.')
param allowedSourceHosts string = ''
@description('COPY_ALLOW_HTTP_SOURCES')
param allowHttpSources string = 'false'
@description('''COPY_CALLBACK_ALLOWED_HOSTS: hosts completion callbacks may go to. The catalogue's local default
(127.0.0.1,localhost) would let callers make the app POST to its own instance, so the cloud default is
empty: callbacks are off until you name your hosts.''')
param callbackAllowedHosts string = ''
@description('COPY_RULES: JSON array of Event Grid / webhook copy rules.')
param copyRules string = ''
@description('BLOBCOPY_LOG_LEVEL')
@allowed(['debug', 'info', 'warn', 'error'])
param logLevel string = 'info'

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'blobcopy-identity'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
  }
}

module app 'modules/app.bicep' = {
  name: 'blobcopy-app'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    identityId: identity.outputs.id
    identityPrincipalId: identity.outputs.principalId
    identityClientId: identity.outputs.clientId
    functionAppRuntimeVersion: functionAppRuntimeVersion
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    // An account listed as both source and destination appears once (union drops equal items).
    extraAccounts: union(sourceAccounts, destinationAccounts)
    statusSchedule: statusSchedule
    queueName: queueName
    recordsContainer: recordsContainer
    sourceSasLifetime: sourceSasLifetime
    firstPoll: firstPoll
    maxPollInterval: maxPollInterval
    startGrace: startGrace
    maxFailures: maxFailures
    pollConcurrency: pollConcurrency
    maxCallbackAttempts: maxCallbackAttempts
    allowedDestinations: allowedDestinations
    allowedSourceHosts: allowedSourceHosts
    allowHttpSources: allowHttpSources
    callbackAllowedHosts: callbackAllowedHosts
    copyRules: copyRules
    logLevel: logLevel
  }
}

// Storage Blob Data Reader + Storage Blob Delegator on every source account.
module sourceRoles 'modules/account-roles.bicep' = [for acct in sourceAccounts: {
  name: 'blobcopy-src-${toLower(acct.alias)}'
  scope: resourceGroup(acct.?subscriptionId ?? subscription().subscriptionId, acct.?resourceGroup ?? rg.name)
  params: {
    accountName: acct.name
    principalId: identity.outputs.principalId
    roleDefinitionIds: [
      '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1' // Storage Blob Data Reader
      'db58b8e5-c6ad-4a2a-8342-4190687cbf4a' // Storage Blob Delegator
    ]
  }
}]

// Storage Blob Data Contributor on every destination account.
module destinationRoles 'modules/account-roles.bicep' = [for acct in destinationAccounts: {
  name: 'blobcopy-dst-${toLower(acct.alias)}'
  scope: resourceGroup(acct.?subscriptionId ?? subscription().subscriptionId, acct.?resourceGroup ?? rg.name)
  params: {
    accountName: acct.name
    principalId: identity.outputs.principalId
    roleDefinitionIds: [
      'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // Storage Blob Data Contributor
    ]
  }
}]

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.functionAppName
output AZURE_FUNCTION_URI string = app.outputs.functionAppUri
output AZURE_STORAGE_ACCOUNT_NAME string = app.outputs.storageAccountName
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId

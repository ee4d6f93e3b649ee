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
resourceGroup: '<optional, default: this deployment's group>', subscriptionId: '<optional>',
lease: <optional bool, default true>, leaseContainers: [<optional container names>] }.
The identity gets Storage Blob Data Reader on each (read + user-delegation key, see docs/permissions.md),
and, unless lease is false, the custom "blobcopy source lease" role (Lease Blob needs blobs/write: Azure
has no lease-only permission) on the account or only on leaseContainers. The app gets
COPY_ACCOUNT_<ALIAS>__blobServiceUri / __credential / __clientId.''')
param sourceAccounts array = []

@description('''Accounts the app copies TO, same shape as sourceAccounts (lease and leaseContainers are
ignored). The identity gets the custom "blobcopy destination writer" role on each. An account that is both
source and destination is listed in both, with the same alias.''')
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
param maxCallbackAttempts string = '8'
@description('COPY_ALLOWED_DESTINATIONS: comma-separated account/container patterns; empty allows all configured accounts.')
param allowedDestinations string = ''
@description('''COPY_ALLOWED_SOURCE_HOSTS: comma-separated source hosts. Empty here means "the configured
source accounts' blob endpoints and the app's own account" (computed below); set it to widen the list, e.g.
'*.blob.core.windows.net' or external hosts.''')
param allowedSourceHosts string = ''
@description('COPY_ALLOW_HTTP_SOURCES')
param allowHttpSources string = 'false'
@description('''COPY_CALLBACK_ALLOWED_HOSTS: hosts completion callbacks may go to. The catalogue's local default
(127.0.0.1,localhost) would let callers make the app POST to its own instance, so the cloud default is
empty: callbacks are off until you name your hosts.''')
param callbackAllowedHosts string = ''
@description('''COPY_RULES: the Event Grid / webhook copy rules (README "Event Grid"), as an array in
main.parameters.json (azd substitutes environment values into that file without JSON escaping, so rules
live in the file, not in an azd environment value). Each source account a rule names by sourceAccount gets
an Event Grid subscription (eventGridFunctionKey).''')
param copyRules array = []
@description('BLOBCOPY_LOG_LEVEL')
@allowed(['debug', 'info', 'warn', 'error'])
param logLevel string = 'info'

// --- Event Grid (docs/deploy.md "Event Grid subscriptions") -------------------------------

@secure()
@description('''Value of the function key "eventgrid" that Event Grid puts in the webhook URL (?code=).
Empty: no key and no subscription (the first `azd up`, before the handler answers the validation
handshake). Set it (azd env set BLOBCOPY_EVENTGRID_KEY ...) and provision again to subscribe every
source account that COPY_RULES names.''')
param eventGridFunctionKey string = ''

@description('Event types delivered to copyfn.')
param eventGridEventTypes array = [
  'Microsoft.Storage.BlobCreated'
  'Microsoft.Storage.BlobRenamed'
]

@minValue(1)
@maxValue(5000)
@description('maxEventsPerBatch of each webhook subscription.')
param eventGridMaxEventsPerBatch int = 50

@minValue(1)
@maxValue(1024)
@description('preferredBatchSizeInKilobytes of each webhook subscription (the handler accepts bodies up to 1 MiB).')
param eventGridPreferredBatchSizeInKilobytes int = 512

@minValue(1)
@maxValue(30)
@description('Retry policy: delivery attempts before an event is dead-lettered.')
param eventGridMaxDeliveryAttempts int = 30

@minValue(1)
@maxValue(1440)
@description('Retry policy: minutes an undelivered event lives before it is dead-lettered.')
param eventGridEventTimeToLiveInMinutes int = 1440

// --- Operations (docs/operations.md) ------------------------------------------------------

@description('E-mail address the alerts notify; empty creates the alerts without an action group.')
param alertEmail string = ''

@minValue(1)
@maxValue(47)
@description('Alert when a copy is still pending this many hours after it started.')
param pendingAlertHours int = 24

@minValue(15)
@description('''Days after their last change that job records (jobs/ in the records container) are deleted by
a lifecycle management rule. Azure ends a pending copy after two weeks, so records younger than that are
never deleted.''')
param recordRetentionDays int = 30

// --- Network (docs/network.md) ---------------------------------------------------------------

@description('''Integrate the app with a new virtual network and reach its own storage account through
private endpoints only (public network access off).''')
param vnetEnabled bool = false

@description('Address space of the virtual network (vnetEnabled).')
param vnetAddressPrefix string = '10.40.0.0/16'

// --- Callers and owners (README "Callers and owners") ------------------------------------------

@description('''Turn on App Service Authentication with Microsoft Entra ID (modules/auth.bicep): callers
that send an Entra access token own the copies they start and see only theirs, unless they hold
the app role Copies.ReadAll or Copies.Admin. Also sets BLOBCOPY_TRUST_CLIENT_PRINCIPAL=true.''')
param entraAuthEnabled bool = false

@description('Client id of the API\'s Entra app registration, which declares the app roles Copies.ReadAll and Copies.Admin (entraAuthEnabled).')
param entraClientId string = ''

@description('Client ids of the applications allowed to call with a token; empty: any (entraAuthEnabled).')
param entraAllowedApplications array = []

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

// --- Roles ------------------------------------------------------------------------------------
// What each kind of account grants the app's identity. docs/permissions.md explains every entry,
// and internal/azstorage/permissions_test.go checks these sets against every storage call in the
// code: a new SDK call whose data action no set grants fails the build.
var builtInRoles = {
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
}

// The subscriptions the custom roles must be assignable in.
var roleSubscriptions = union(
  [subscription().id],
  map(union(sourceAccounts, destinationAccounts), a => '/subscriptions/${a.?subscriptionId ?? subscription().subscriptionId}')
)

// Lease Blob (acquire, renew, release) is authorized by blobs/write: Azure has no narrower action,
// so this role is as small as a lease allows and is assigned only where leaseSource is wanted.
resource sourceLeaseRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'blobcopy-source-lease')
  properties: {
    roleName: 'blobcopy source lease (${environmentName}-${resourceToken})'
    description: 'Lease Blob on copy sources (leaseSource). Azure authorizes Lease Blob with blobs/write.'
    type: 'CustomRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: roleSubscriptions
  }
}

// Copy Blob into destinations with every request option and nothing more: no rename, no ACLs.
// Storage Blob Data Contributor lacks tags/write (the tags option). Delete is granted because a
// start refused after snapshotting the destination deletes that snapshot (issue 10): the app
// never deletes a base blob (docs/permissions.md).
resource destinationWriterRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(subscription().id, environmentName, 'blobcopy-destination-writer')
  properties: {
    roleName: 'blobcopy destination writer (${environmentName}-${resourceToken})'
    description: 'Copy Blob into destinations (metadata, tags, tier, snapshots, abort, missing containers).'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          // Create Container (a missing destination container is created).
          'Microsoft.Storage/storageAccounts/blobServices/containers/write'
          // Same-account copies: the source SAS is a user-delegation SAS of this account.
          'Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action'
        ]
        notActions: []
        dataActions: [
          // Get Blob Properties (copy status); a same-account source read through the SAS.
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'
          // Copy Blob (new or existing destination, tier), Abort Copy Blob, Snapshot Blob,
          // Lease Blob on a same-account source.
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'
          // Copy Blob with x-ms-tags (the tags option).
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/tags/write'
          // Delete Blob of the destination snapshot a refused start took (snapshotDestination).
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete'
        ]
        notDataActions: []
      }
    ]
    assignableScopes: roleSubscriptions
  }
}

var sourceRoles = [
  builtInRoles.storageBlobDataReader
]
var sourceLeaseRoles = [
  sourceLeaseRole.name
]
var destinationRoles = [
  destinationWriterRole.name
]

// --- Event Grid: the source accounts COPY_RULES names -------------------------------------------
var rules = copyRules
var ruleAccountNames = map(filter(rules, r => !empty(r.?sourceAccount ?? '')), r => toLower(r.sourceAccount))
var eventGridAccounts = filter(sourceAccounts, a => contains(ruleAccountNames, toLower(a.name)))

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
    eventGridIdentityPrincipalId: identity.outputs.eventGridPrincipalId
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
    sourceAccountNames: map(sourceAccounts, a => a.name)
    allowHttpSources: allowHttpSources
    callbackAllowedHosts: callbackAllowedHosts
    copyRules: empty(copyRules) ? '' : string(copyRules)
    logLevel: logLevel
    eventGridFunctionKey: eventGridFunctionKey
    recordRetentionDays: recordRetentionDays
    appSubnetId: vnetEnabled ? network.outputs.appSubnetId : ''
    trustClientPrincipal: entraAuthEnabled ? 'true' : 'false'
  }
}

module auth 'modules/auth.bicep' = if (entraAuthEnabled) {
  name: 'blobcopy-auth'
  scope: rg
  params: {
    functionAppName: app.outputs.functionAppName
    clientId: entraClientId
    allowedApplications: entraAllowedApplications
  }
}

module network 'modules/network.bicep' = if (vnetEnabled) {
  name: 'blobcopy-network'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    addressPrefix: vnetAddressPrefix
  }
}

// Private endpoints of the app's storage account (blob, queue, table) in the VNet.
module privateEndpoints 'modules/private-endpoints.bicep' = if (vnetEnabled) {
  name: 'blobcopy-private-endpoints'
  scope: rg
  params: {
    location: location
    tags: tags
    storageAccountName: app.outputs.storageAccountName
    subnetId: network.outputs.privateEndpointSubnetId
    vnetId: network.outputs.vnetId
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'blobcopy-alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    resourceToken: resourceToken
    appInsightsId: app.outputs.appInsightsId
    storageAccountId: app.outputs.storageAccountId
    alertEmail: alertEmail
    pendingAlertHours: pendingAlertHours
  }
}

// Read (and sign user-delegation SAS for) every source account.
module sourceRoleAssignments 'modules/account-roles.bicep' = [for acct in sourceAccounts: {
  name: 'blobcopy-src-${toLower(acct.alias)}'
  scope: resourceGroup(acct.?subscriptionId ?? subscription().subscriptionId, acct.?resourceGroup ?? rg.name)
  params: {
    accountName: acct.name
    principalId: identity.outputs.principalId
    roleDefinitionIds: sourceRoles
  }
}]

// Lease the sources (leaseSource), unless an account says lease: false; on leaseContainers only
// when it names them.
module sourceLeaseAssignments 'modules/account-roles.bicep' = [for acct in sourceAccounts: if (acct.?lease ?? true) {
  name: 'blobcopy-lease-${toLower(acct.alias)}'
  scope: resourceGroup(acct.?subscriptionId ?? subscription().subscriptionId, acct.?resourceGroup ?? rg.name)
  params: {
    accountName: acct.name
    principalId: identity.outputs.principalId
    roleDefinitionIds: sourceLeaseRoles
    containers: acct.?leaseContainers ?? []
  }
}]

// Copy into every destination account.
module destinationRoleAssignments 'modules/account-roles.bicep' = [for acct in destinationAccounts: {
  name: 'blobcopy-dst-${toLower(acct.alias)}'
  scope: resourceGroup(acct.?subscriptionId ?? subscription().subscriptionId, acct.?resourceGroup ?? rg.name)
  params: {
    accountName: acct.name
    principalId: identity.outputs.principalId
    roleDefinitionIds: destinationRoles
  }
}]

// One system topic and webhook subscription per source account that COPY_RULES names, once the
// handler runs (eventGridFunctionKey set): Event Grid validates the endpoint when subscribing.
module eventGrid 'modules/eventgrid.bicep' = [for acct in eventGridAccounts: if (!empty(eventGridFunctionKey)) {
  name: 'blobcopy-eg-${toLower(acct.alias)}'
  scope: resourceGroup(acct.?subscriptionId ?? subscription().subscriptionId, acct.?resourceGroup ?? rg.name)
  params: {
    accountName: acct.name
    rules: rules
    endpointUrl: '${app.outputs.functionAppUri}/api/copies?code=${eventGridFunctionKey}'
    eventTypes: eventGridEventTypes
    maxEventsPerBatch: eventGridMaxEventsPerBatch
    preferredBatchSizeInKilobytes: eventGridPreferredBatchSizeInKilobytes
    maxDeliveryAttempts: eventGridMaxDeliveryAttempts
    eventTimeToLiveInMinutes: eventGridEventTimeToLiveInMinutes
    deadLetterAccountId: app.outputs.storageAccountId
    deadLetterContainer: app.outputs.deadLetterContainer
    identityId: identity.outputs.eventGridId
  }
}]

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.functionAppName
output AZURE_FUNCTION_URI string = app.outputs.functionAppUri
output AZURE_STORAGE_ACCOUNT_NAME string = app.outputs.storageAccountName
output AZURE_MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output BLOBCOPY_EVENTGRID_ACCOUNTS string = join(map(eventGridAccounts, a => a.name), ',')

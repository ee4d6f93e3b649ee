// Event Grid for one source account (deployed into its resource group): the account's system
// topic and a webhook subscription that delivers to copyfn exactly the events COPY_RULES can
// turn into copies. An account has at most one system topic: if it already has one, remove
// it or add this subscription to it by hand (docs/deploy.md).

@description('Name of the existing source storage account.')
param accountName string

@description('COPY_RULES, parsed (every rule; those naming this account are used).')
param rules array

@secure()
@description('copyfn\'s URL with the function key: https://<app>/api/copies?code=<key>.')
param endpointUrl string

@description('Event types to deliver.')
param eventTypes array

param maxEventsPerBatch int
param preferredBatchSizeInKilobytes int
param maxDeliveryAttempts int
param eventTimeToLiveInMinutes int

@description('Resource id of the storage account holding the dead-letter container.')
param deadLetterAccountId string
param deadLetterContainer string

@description('User-assigned identity the topic dead-letters with.')
param identityId string

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: accountName
}

var accountRules = filter(rules, r => toLower(r.?sourceAccount ?? '') == toLower(accountName))

// data.api values the rules accept (internal/eventgrid CommitOf, internal/api/events.go):
// blobs committed by a client.
// CopyBlob fires when a copy starts, on an empty blob, and is how copy loops begin: only
// when a rule opts in. CreateFile and SftpCreate fire before any data is written: never.
var committedApis = [
  'PutBlob'
  'PutBlockList'
  'FlushWithClose'
  'SftpCommit'
]
// BlobRenamed events (a file committed by renaming it into a rule's prefix raises no
// BlobCreated): the app copies the renamed blob (internal/api/events.go).
var renameApis = [
  'RenameFile'
  'SftpRename'
]
var acceptsCopyEvents = length(filter(accountRules, r => r.?acceptCopyEvents ?? false)) > 0
var apis = concat(committedApis, renameApis, acceptsCopyEvents ? ['CopyBlob'] : [])

// Only blobs under a rule's container and prefix (an advanced filter holds up to 25 values).
var subjectPrefixes = union(map(accountRules, r => '/blobServices/default/containers/${r.sourceContainer}/blobs/${r.?sourcePrefix ?? ''}'), [])

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-blobcopy-${accountName}'
  location: account.location
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    source: account.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

resource copyfnSubscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'blobcopy-copyfn'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: endpointUrl
        maxEventsPerBatch: maxEventsPerBatch
        preferredBatchSizeInKilobytes: preferredBatchSizeInKilobytes
      }
    }
    filter: {
      includedEventTypes: eventTypes
      advancedFilters: concat([
        {
          operatorType: 'StringIn'
          key: 'data.api'
          values: apis
        }
      ], empty(subjectPrefixes) ? [] : [
        {
          operatorType: 'StringBeginsWith'
          key: 'subject'
          values: subjectPrefixes
        }
      ])
    }
    retryPolicy: {
      maxDeliveryAttempts: maxDeliveryAttempts
      eventTimeToLiveInMinutes: eventTimeToLiveInMinutes
    }
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'UserAssigned'
        userAssignedIdentity: identityId
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: deadLetterAccountId
          blobContainerName: deadLetterContainer
        }
      }
    }
  }
}

output systemTopicName string = topic.name
output dataApis array = apis

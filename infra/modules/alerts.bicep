// Alerts on the app's health, from the JSON log lines the handler writes (the Functions host
// stores them in Application Insights `traces`) and from the storage account's metrics.
// docs/operations.md lists the log messages and attributes each alert relies on; the infra
// tests check that the code still writes every message quoted here.

param location string
param tags object
param resourceToken string

@description('Application Insights component the handler logs to.')
param appInsightsId string

@description('The app\'s storage account (tracking queue, job records, host storage).')
param storageAccountId string

@description('E-mail address notified; empty: alerts without an action group.')
param alertEmail string

@description('Hours after "copy pending" without an outcome before the stuck-copy alert fires (at most 47).')
param pendingAlertHours int

// Every handler line parsed: `l` holds msg, level, jobId, copyId, operation, err...
var logLines = 'traces | extend i = indexof(message, "{") | where i >= 0 | extend l = parse_json(substring(message, i)) | where isnotempty(tostring(l.msg))'

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-blobcopy-${resourceToken}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'blobcopy'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var actionGroups = empty(alertEmail) ? [] : [
  actionGroup.id
]

var logAlerts = [
  {
    name: 'poisoned'
    displayName: 'blobcopy: tracking message moved to the poison queue'
    description: 'A tracking message reached the poison queue (copyjobs-poison): its copy is no longer tracked. See docs/operations.md "Poison queue".'
    severity: 1
    frequency: 'PT5M'
    window: 'PT5M'
    query: '${logLines} | where tostring(l.msg) == "tracking message moved to the poison queue" | project timestamp, jobId = tostring(l.jobId), messageId = tostring(l.messageId), reason = tostring(l.reason)'
  }
  {
    name: 'pending-too-long'
    displayName: 'blobcopy: copy pending longer than ${pendingAlertHours}h'
    description: 'A copy logged "copy pending" ${pendingAlertHours} hours ago and no outcome since. See docs/operations.md "Stuck jobs".'
    severity: 2
    frequency: 'PT1H'
    window: 'PT${pendingAlertHours + 1}H'
    query: 'let started = ${logLines} | where timestamp < ago(${pendingAlertHours}h) | where tostring(l.msg) == "copy pending" | project jobId = tostring(l.jobId), startedAt = timestamp; let ended = ${logLines} | where tostring(l.msg) in ("copy outcome recorded", "copy aborted") | project jobId = tostring(l.jobId); started | join kind=leftanti ended on jobId'
  }
  {
    name: 'callback-gave-up'
    displayName: 'blobcopy: completion callback given up'
    description: 'A completion callback failed COPY_MAX_CALLBACK_ATTEMPTS times; the job record keeps callback.lastError.'
    severity: 2
    frequency: 'PT15M'
    window: 'PT15M'
    query: '${logLines} | where tostring(l.msg) == "completion callback failed" and tobool(l.gaveUp) | project timestamp, jobId = tostring(l.jobId), attempt = toint(l.attempt), err = tostring(l.err)'
  }
  {
    name: 'lease-release-refused'
    displayName: 'blobcopy: a source lease cannot be released'
    description: 'Storage refused to release a source lease COPY_MAX_FAILURES times in a row (the app lost its lease permission): the lease may still be held; the app keeps trying. Release it by hand, or restore the permission. See docs/operations.md "Alerts".'
    severity: 1
    frequency: 'PT15M'
    window: 'PT15M'
    query: '${logLines} | where tostring(l.msg) == "source lease cannot be released: storage refuses it; the app keeps trying, release it by hand if it is held" | project timestamp, jobId = tostring(l.jobId), leaseId = tostring(l.leaseId), err = tostring(l.err)'
  }
  {
    name: 'tick-failed'
    displayName: 'blobcopy: status tick failed'
    description: 'statusfn failed (storage unreachable, or a timeout): copies are not being polled.'
    severity: 1
    frequency: 'PT15M'
    window: 'PT15M'
    query: '${logLines} | where tostring(l.msg) == "status tick failed" | project timestamp, err = tostring(l.err) | union (requests | where name == "statusfn" and success == false | project timestamp, err = tostring(resultCode))'
  }
  {
    name: 'storage-throttled'
    displayName: 'blobcopy: storage throttling or timeouts reach the app'
    description: 'Storage answered ServerBusy / OperationTimedOut / 503 after the SDK retries: requests answer 503 and ticks retry.'
    severity: 2
    frequency: 'PT15M'
    window: 'PT15M'
    query: '${logLines} | where tostring(l.err) has_any ("ServerBusy", "OperationTimedOut", "storage answered 503", "storage answered 500") | project timestamp, msg = tostring(l.msg), jobId = tostring(l.jobId), err = tostring(l.err)'
  }
]

resource logAlertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for a in logAlerts: {
  name: 'blobcopy-${a.name}-${resourceToken}'
  location: location
  tags: tags
  properties: {
    displayName: a.displayName
    description: a.description
    severity: a.severity
    enabled: true
    evaluationFrequency: a.frequency
    windowSize: a.window
    scopes: [
      appInsightsId
    ]
    criteria: {
      allOf: [
        {
          query: a.query
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: false
    actions: {
      actionGroups: actionGroups
    }
  }
}]

// Throttling of the app's own account (queue, records, host), whether or not it reaches the
// app's logs: transactions Azure Storage refused as throttled or busy.
resource storageThrottling 'Microsoft.Insights/metricAlerts@2018-03-01' = {
  name: 'blobcopy-storage-throttling-${resourceToken}'
  location: 'global'
  tags: tags
  properties: {
    description: 'Throttled or server-busy transactions on the app\'s storage account.'
    severity: 2
    enabled: true
    scopes: [
      storageAccountId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      'odata.type': 'Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria'
      allOf: [
        {
          criterionType: 'StaticThresholdCriterion'
          name: 'throttled'
          metricNamespace: 'Microsoft.Storage/storageAccounts'
          metricName: 'Transactions'
          dimensions: [
            {
              name: 'ResponseType'
              operator: 'Include'
              values: [
                'ServerBusyError'
                'ClientThrottlingError'
                'ClientAccountRequestThrottlingError'
                'ClientAccountBandwidthThrottlingError'
              ]
            }
          ]
          operator: 'GreaterThan'
          threshold: 0
          timeAggregation: 'Total'
        }
      ]
    }
    actions: [for id in actionGroups: {
      actionGroupId: id
    }]
  }
}

output logAlertNames array = [for (a, i) in logAlerts: logAlertRules[i].name]

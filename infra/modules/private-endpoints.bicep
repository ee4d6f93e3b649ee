// Private endpoints of the app's storage account (blob, queue, table: the host, the tracking
// queue, the job records and the deployment package) with their private DNS zones linked to
// the virtual network, so the app resolves the account to private addresses.

param location string
param tags object

@description('The app\'s storage account.')
param storageAccountName string

@description('Subnet of the private endpoints.')
param subnetId string

@description('Virtual network the DNS zones are linked to.')
param vnetId string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

var services = [
  'blob'
  'queue'
  'table'
]

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [for svc in services: {
  name: 'privatelink.${svc}.${environment().suffixes.storage}'
  location: 'global'
  tags: tags
}]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [for (svc, i) in services: {
  parent: zones[i]
  name: 'blobcopy'
  location: 'global'
  properties: {
    virtualNetwork: {
      id: vnetId
    }
    registrationEnabled: false
  }
}]

resource endpoints 'Microsoft.Network/privateEndpoints@2024-01-01' = [for svc in services: {
  name: 'pe-${storageAccountName}-${svc}'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: subnetId
    }
    privateLinkServiceConnections: [
      {
        name: svc
        properties: {
          privateLinkServiceId: storage.id
          groupIds: [
            svc
          ]
        }
      }
    ]
  }
}]

resource zoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2024-01-01' = [for (svc, i) in services: {
  parent: endpoints[i]
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: svc
        properties: {
          privateDnsZoneId: zones[i].id
        }
      }
    ]
  }
}]

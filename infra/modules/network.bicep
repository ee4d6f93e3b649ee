// Optional virtual network (vnetEnabled): one subnet the Flex Consumption app integrates with
// (delegated to Microsoft.App/environments, as Flex Consumption requires) and one for private
// endpoints. Service endpoints for Microsoft.Storage on the app subnet let source and destination
// accounts admit the app by a virtual network rule (docs/network.md).

param location string
param tags object
param resourceToken string

@description('Address space; the app subnet takes the first /24, private endpoints the second.')
param addressPrefix string

resource vnet 'Microsoft.Network/virtualNetworks@2024-01-01' = {
  name: 'vnet-blobcopy-${resourceToken}'
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: cidrSubnet(addressPrefix, 24, 0)
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
          serviceEndpoints: [
            {
              service: 'Microsoft.Storage'
            }
          ]
        }
      }
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: cidrSubnet(addressPrefix, 24, 1)
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

output vnetId string = vnet.id
output appSubnetId string = vnet.properties.subnets[0].id
output privateEndpointSubnetId string = vnet.properties.subnets[1].id

// The user-assigned managed identity the function app runs as. It is its own module so
// that its ids are plain parameters (known when the app module starts) for the app.

param location string
param tags object
param resourceToken string

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-blobcopy-${resourceToken}'
  location: location
  tags: tags
}

// Event Grid's identity: the system topics dead-letter with it (Storage Blob Data Contributor on
// the dead-letter container only, modules/app.bicep).
resource eventGridIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-blobcopy-eventgrid-${resourceToken}'
  location: location
  tags: tags
}

output id string = identity.id
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
output eventGridId string = eventGridIdentity.id
output eventGridPrincipalId string = eventGridIdentity.properties.principalId

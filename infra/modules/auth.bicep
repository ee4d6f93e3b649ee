// App Service Authentication ("Easy Auth") with Microsoft Entra ID on the function app, so that
// callers who send an Entra access token are identified (X-MS-CLIENT-PRINCIPAL) and see only
// their own copies (README "Callers and owners").
//
// It validates bearer tokens only: no sign-in flow, no client secret, no token store.
// Unauthenticated requests are let through (AllowAnonymous): function keys still gate every
// route (authLevel function), and key callers and Event Grid deliveries carry no token. A
// request whose token is invalid is refused by the platform with 401.
//
// The app registration is not created here (Bicep cannot create Entra applications without the
// Microsoft Graph extension): create it with the app roles below and pass its client id.
//   App roles (allowedMemberTypes User and Application):
//     Copies.ReadAll  read every copy (GET one, list); abort only one's own
//     Copies.Admin    read and abort every copy; answers show each job's owner
//
// Flex Consumption: the Flex Consumption plan article listed EasyAuth as not supported during
// its preview ("Unauthenticated callers currently aren't blocked when EasyAuth is enabled").
// Check the current article before relying on this option; the handler trusts the header only
// when BLOBCOPY_TRUST_CLIENT_PRINCIPAL=true AND the platform sets WEBSITE_AUTH_ENABLED=True.

@description('Name of the function app (modules/app.bicep).')
param functionAppName string

@description('Application (client) id of the API\'s Entra app registration.')
param clientId string

@description('Audiences accepted in access tokens; empty: api://<clientId> and the client id.')
param allowedAudiences array = []

@description('Applications (client ids) allowed to call; empty: any application of the tenant.')
param allowedApplications array = []

var audiences = empty(allowedAudiences) ? [
  'api://${clientId}'
  clientId
] : allowedAudiences

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource authSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: {
      enabled: true
    }
    globalValidation: {
      requireAuthentication: false
      unauthenticatedClientAction: 'AllowAnonymous'
    }
    httpSettings: {
      requireHttps: true
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: clientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        validation: {
          allowedAudiences: audiences
          defaultAuthorizationPolicy: empty(allowedApplications) ? null : {
            allowedApplications: allowedApplications
          }
        }
      }
    }
    login: {
      tokenStore: {
        enabled: false
      }
    }
  }
}

output enabled bool = authSettings.properties.platform.enabled

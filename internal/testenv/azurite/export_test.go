package azurite

import (
	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// TokenCredentialWithAlg lets tests compare JWT header variants.
func TokenCredentialWithAlg(alg string) azcore.TokenCredential { return newFakeTokenCredential(alg) }

package contract_test

import (
	"testing"

	"github.com/blobcopy/blobcopy/internal/batch"
	"github.com/blobcopy/blobcopy/internal/batch/batchtest"
	"github.com/blobcopy/blobcopy/internal/batch/batchtest/contract"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
)

// The fake held to the contract azstorage.BatchRecords passes on Azurite
// (internal/azstorage TestContractBatchStoreListOnAzurite).
func TestContractBatchStoreListOnTheFake(t *testing.T) {
	contract.RunStoreList(t, func(t *testing.T) batch.Store { return batchtest.NewStore(copyjobtest.NewRecords()) })
}

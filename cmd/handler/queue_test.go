package main_test

import (
	"context"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
)

func queueClient(t *testing.T, az *azurite.Instance, name string) *azqueue.QueueClient {
	t.Helper()
	cred, err := azqueue.NewSharedKeyCredential("devstoreaccount1", az.Key("devstoreaccount1"))
	if err != nil {
		t.Fatal(err)
	}
	q, err := azqueue.NewQueueClientWithSharedKeyCredential(az.QueueEndpoint("devstoreaccount1")+"/"+name, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func enqueue(t *testing.T, az *azurite.Instance, text string) {
	t.Helper()
	if _, err := queueClient(t, az, "copyjobs").EnqueueMessage(context.Background(), text, nil); err != nil {
		t.Fatal(err)
	}
}

func queueLength(t *testing.T, az *azurite.Instance, name string) int64 {
	t.Helper()
	p, err := queueClient(t, az, name).GetProperties(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return *p.ApproximateMessagesCount
}

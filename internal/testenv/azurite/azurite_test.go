package azurite_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/blockblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/container"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/service"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// sharedKeyBlob returns a client for account/container/name signed with the account key.
func sharedKeyBlob(t *testing.T, az *azurite.Instance, account, cont, name string) *blockblob.Client {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(account, az.Key(account))
	if err != nil {
		t.Fatal(err)
	}
	c, err := blockblob.NewClientWithSharedKeyCredential(
		fmt.Sprintf("%s/%s/%s", az.BlobEndpoint(account), cont, name), cred,
		&blockblob.ClientOptions{ClientOptions: az.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createContainer(t *testing.T, az *azurite.Instance, account, cont string) {
	t.Helper()
	cred, err := azblob.NewSharedKeyCredential(account, az.Key(account))
	if err != nil {
		t.Fatal(err)
	}
	c, err := container.NewClientWithSharedKeyCredential(az.BlobEndpoint(account)+"/"+cont, cred,
		&container.ClientOptions{ClientOptions: az.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Create(testContext(t), nil); err != nil {
		t.Fatalf("create container %s/%s: %v", account, cont, err)
	}
}

func download(t *testing.T, c *blob.Client) []byte {
	t.Helper()
	resp, err := c.DownloadStream(testContext(t), nil)
	if err != nil {
		t.Fatalf("download %s: %v", c.URL(), err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAccountsAndCrossAccountCopy(t *testing.T) {
	t.Parallel()
	other := azurite.NewAccount("acct2")
	az := azurite.Start(t, azurite.Options{Accounts: []azurite.Account{other}})
	ctx := testContext(t)

	// Each account holds its own blob.
	for _, account := range []string{azurite.DevAccountName, other.Name} {
		createContainer(t, az, account, "data")
		b := sharedKeyBlob(t, az, account, "data", "hello.txt")
		if _, err := b.UploadBuffer(ctx, []byte("hello from "+account), nil); err != nil {
			t.Fatalf("upload to %s: %v", account, err)
		}
	}

	// Copy devstoreaccount1 -> acct2 with an account-key SAS on the source.
	srcCred, err := azblob.NewSharedKeyCredential(azurite.DevAccountName, az.Key(azurite.DevAccountName))
	if err != nil {
		t.Fatal(err)
	}
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		StartTime:     time.Now().UTC().Add(-time.Minute),
		ExpiryTime:    time.Now().UTC().Add(time.Hour),
		Permissions:   (&sas.BlobPermissions{Read: true}).String(),
		ContainerName: "data",
		BlobName:      "hello.txt",
	}.SignWithSharedKey(srcCred)
	if err != nil {
		t.Fatal(err)
	}
	srcURL := az.BlobEndpoint(azurite.DevAccountName) + "/data/hello.txt?" + qp.Encode()

	dst := sharedKeyBlob(t, az, other.Name, "data", "copied.txt")
	resp, err := dst.BlobClient().StartCopyFromURL(ctx, srcURL, nil)
	if err != nil {
		t.Fatalf("start copy: %v", err)
	}
	if got := *resp.CopyStatus; got != blob.CopyStatusTypeSuccess {
		t.Fatalf("copy status = %s, want success (Azurite copies synchronously)", got)
	}
	if got := string(download(t, dst.BlobClient())); got != "hello from devstoreaccount1" {
		t.Fatalf("copied content = %q", got)
	}

	// The connection string works with the SDK's parser.
	cc, err := azblob.NewClientFromConnectionString(az.ConnectionString(other.Name), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cc.ServiceClient().NewContainerClient("data").NewBlobClient("hello.txt").GetProperties(ctx, nil); err != nil {
		t.Fatalf("get properties via connection string: %v", err)
	}
}

func TestQueueRoundTrip(t *testing.T) {
	t.Parallel()
	az := azurite.Start(t, azurite.Options{})
	ctx := testContext(t)

	q, err := azqueue.NewQueueClientFromConnectionString(az.ConnectionString(azurite.DevAccountName), "jobs", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Create(ctx, nil); err != nil {
		t.Fatalf("create queue: %v", err)
	}
	if _, err := q.EnqueueMessage(ctx, `{"job":"1"}`, nil); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	resp, err := q.DequeueMessages(ctx, &azqueue.DequeueMessagesOptions{NumberOfMessages: to.Ptr[int32](1)})
	if err != nil {
		t.Fatalf("dequeue: %v", err)
	}
	if len(resp.Messages) != 1 || *resp.Messages[0].MessageText != `{"job":"1"}` {
		t.Fatalf("dequeued %+v", resp.Messages)
	}
	if _, err := q.DeleteMessage(ctx, *resp.Messages[0].MessageID, *resp.Messages[0].PopReceipt, nil); err != nil {
		t.Fatalf("delete message: %v", err)
	}
}

func TestRestartLosesData(t *testing.T) {
	t.Parallel()
	az := azurite.Start(t, azurite.Options{Services: azurite.Blob})
	createContainer(t, az, azurite.DevAccountName, "before")
	endpoint := az.BlobEndpoint(azurite.DevAccountName)

	az.Restart(t)

	if got := az.BlobEndpoint(azurite.DevAccountName); got != endpoint {
		t.Fatalf("endpoint changed across restart: %s -> %s", endpoint, got)
	}
	cred, _ := azblob.NewSharedKeyCredential(azurite.DevAccountName, azurite.DevAccountKey)
	c, _ := container.NewClientWithSharedKeyCredential(endpoint+"/before", cred, nil)
	_, err := c.GetProperties(testContext(t), nil)
	if !bloberror.HasCode(err, bloberror.ContainerNotFound) {
		t.Fatalf("after restart: err = %v, want ContainerNotFound (in-memory data is lost)", err)
	}
}

// TestOAuthUserDelegationCopy proves the azurite.md recipe from Go: a bearer
// token gets a user delegation key, whose read-only SAS both downloads a blob
// and serves as a Copy Blob source.
func TestOAuthUserDelegationCopy(t *testing.T) {
	t.Parallel()
	az := azurite.Start(t, azurite.Options{OAuth: true})
	ctx := testContext(t)
	endpoint := az.BlobEndpoint(azurite.DevAccountName)
	if !strings.HasPrefix(endpoint, "https://") {
		t.Fatalf("OAuth endpoint %s is not HTTPS", endpoint)
	}
	if az.CertPool() == nil {
		t.Fatal("CertPool is nil with OAuth")
	}

	createContainer(t, az, azurite.DevAccountName, "src")
	src := sharedKeyBlob(t, az, azurite.DevAccountName, "src", "a.bin")
	content := bytes.Repeat([]byte("x"), 1000)
	if _, err := src.UploadBuffer(ctx, content, nil); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		cred azcore.TokenCredential
	}{
		{"alg none", az.TokenCredential()},
		{"HS256 junk signature", azurite.TokenCredentialWithAlg("HS256")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Now().UTC()
			udc, err := az.UserDelegationCredential(ctx, azurite.DevAccountName, tt.cred, now.Add(-time.Minute), now.Add(time.Hour))
			if err != nil {
				t.Fatalf("UserDelegationCredential: %v", err)
			}
			qp, err := sas.BlobSignatureValues{
				Protocol:      sas.ProtocolHTTPS,
				StartTime:     now.Add(-time.Minute),
				ExpiryTime:    now.Add(30 * time.Minute),
				Permissions:   (&sas.BlobPermissions{Read: true}).String(),
				ContainerName: "src",
				BlobName:      "a.bin",
			}.SignWithUserDelegation(udc)
			if err != nil {
				t.Fatal(err)
			}
			sasURL := src.URL() + "?" + qp.Encode()

			// Download with nothing but the SAS.
			anon, err := blob.NewClientWithNoCredential(sasURL, &blob.ClientOptions{ClientOptions: az.ClientOptions()})
			if err != nil {
				t.Fatal(err)
			}
			if got := download(t, anon); !bytes.Equal(got, content) {
				t.Fatalf("SAS download: got %d bytes", len(got))
			}

			// Copy into a destination authorised by the bearer token.
			dst, err := blob.NewClient(endpoint+"/src/copy-"+strings.ReplaceAll(tt.name, " ", "-"), tt.cred,
				&blob.ClientOptions{ClientOptions: az.ClientOptions()})
			if err != nil {
				t.Fatal(err)
			}
			resp, err := dst.StartCopyFromURL(ctx, sasURL, nil)
			if err != nil {
				t.Fatalf("copy with user delegation SAS source: %v", err)
			}
			if *resp.CopyStatus != blob.CopyStatusTypeSuccess {
				t.Fatalf("copy status %s", *resp.CopyStatus)
			}
			if got := download(t, dst); !bytes.Equal(got, content) {
				t.Fatalf("copied %d bytes, want %d", len(got), len(content))
			}
		})
	}

	// azblob names the credential's account after the first label of the
	// host ("127" for a path-style IP endpoint), so such a SAS is refused.
	// If this starts passing, the SDK was fixed and UserDelegationCredential
	// no longer needs the product-style endpoint.
	t.Run("path-style endpoint signs for the wrong account", func(t *testing.T) {
		svc, err := service.NewClient(endpoint+"/", az.TokenCredential(), &service.ClientOptions{ClientOptions: az.ClientOptions()})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		udc, err := svc.GetUserDelegationCredential(ctx, service.KeyInfo{
			Start:  to.Ptr(now.Add(-time.Minute).Format(sas.TimeFormat)),
			Expiry: to.Ptr(now.Add(time.Hour).Format(sas.TimeFormat)),
		}, nil)
		if err != nil {
			t.Fatalf("GetUserDelegationCredential: %v", err)
		}
		qp, err := sas.BlobSignatureValues{
			Protocol: sas.ProtocolHTTPS, ExpiryTime: now.Add(time.Hour),
			Permissions:   (&sas.BlobPermissions{Read: true}).String(),
			ContainerName: "src", BlobName: "a.bin",
		}.SignWithUserDelegation(udc)
		if err != nil {
			t.Fatal(err)
		}
		anon, _ := blob.NewClientWithNoCredential(src.URL()+"?"+qp.Encode(),
			&blob.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: az.HTTPClient(), Retry: noRetry}})
		_, err = anon.GetProperties(ctx, nil)
		if err == nil {
			t.Fatal("SAS from a path-style service client worked: the azblob account-name quirk is gone")
		}
		var respErr *azcore.ResponseError
		if !errors.As(err, &respErr) || respErr.StatusCode != http.StatusForbidden {
			t.Fatalf("err = %v, want 403", err)
		}
	})

	// Without trusting the certificate, TLS fails.
	plain, _ := blob.NewClientWithNoCredential(src.URL(), &blob.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: &http.Client{}, Retry: noRetry}})
	if _, err := plain.GetProperties(ctx, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted client: err = %v, want a certificate error", err)
	}
}

var noRetry = policy.RetryOptions{MaxRetries: -1}

package app_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/blobcopy/blobcopy/internal/app"
	"github.com/blobcopy/blobcopy/internal/azstorage"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/funchost"
	"github.com/blobcopy/blobcopy/internal/redact"
	"github.com/blobcopy/blobcopy/internal/testenv/azurite"
	"github.com/blobcopy/blobcopy/internal/testenv/syncbuf"
)

// TestUserDelegationSASAcrossAccounts is the article's headline path, for real: the app
// holds an Entra credential (not a key) for the source account, gets a user-delegation
// key, signs a read-only SAS with it and Copy Blob reads the source through it.
// Azurite's OAuth mode needs HTTPS and checks the token's claims (see azurite.md).
func TestUserDelegationSASAcrossAccounts(t *testing.T) {
	other := azurite.NewAccount("entraacct")
	az := azurite.Start(t, azurite.Options{Accounts: []azurite.Account{other}, OAuth: true})
	logs := &syncbuf.Buffer{}
	values := map[string]string{
		"AzureWebJobsStorage": az.ConnectionString("devstoreaccount1"),
		// No key for this account: only its endpoint and an identity.
		"COPY_ACCOUNT_ENTRA__blobServiceUri": az.BlobEndpoint("entraacct"),
		"COPY_ACCOUNT_ENTRA__credential":     "managedidentity",
		"COPY_STATUS_SCHEDULE":               "*/30 * * * * *",
		"BLOBCOPY_AUTH_DISABLED":             "true",
	}
	log := slog.New(redact.NewHandler(slog.NewJSONHandler(logs, nil)))
	a, err := app.New(repoRoot(t), funchost.NewSettings(values), app.Options{Logger: log,
		Storage: azstorage.Options{ClientOptions: az.ClientOptions(), Credential: az.TokenCredential()}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := a.EnsureStorage(ctx); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()

	// Put the source with the token credential: the app never sees this account's key.
	src, ok := a.Blobs.Account("entra")
	if !ok {
		t.Fatal("account entra not configured")
	}
	if _, err := src.Service.CreateContainer(ctx, "photos", nil); err != nil {
		t.Fatal(err)
	}
	content := strings.Repeat("pixel", 200)
	if _, err := src.Service.NewContainerClient("photos").NewBlockBlobClient("cat.jpg").UploadBuffer(ctx, []byte(content), nil); err != nil {
		t.Fatal(err)
	}

	h := &harness{t: t, srv: srv}
	r := h.do(http.MethodPost, "/api/copies", map[string]any{
		"source":      az.BlobEndpoint("entraacct") + "/photos/cat.jpg",
		"destination": map[string]any{"container": "copies", "blob": "cat.jpg"},
		"leaseSource": true, "sasLifetime": "2h",
	}, nil)
	if r.status != http.StatusOK {
		t.Fatalf("start: %d %s\nazurite: %s", r.status, r.body, az.Output())
	}
	j := r.job(t)
	if j.Status != copyjob.StatusSuccess || j.Source.Kind != copyjob.SourceOtherAccount || j.Source.SASKind != "userDelegation" {
		t.Fatalf("job = %s kind %s sas %s: %s", j.Status, j.Source.Kind, j.Source.SASKind, r.body)
	}
	if j.Source.SASExpiresAt == nil || time.Until(*j.Source.SASExpiresAt) > 2*time.Hour+time.Minute || time.Until(*j.Source.SASExpiresAt) < 119*time.Minute {
		t.Errorf("SAS expiry = %v, want about 2h from now", j.Source.SASExpiresAt)
	}
	if j.Lease == nil || j.Lease.State != copyjob.LeaseReleased {
		t.Errorf("lease = %+v", j.Lease)
	}
	own, _ := a.Blobs.Account("")
	dl, err := own.Service.NewContainerClient("copies").NewBlobClient("cat.jpg").DownloadStream(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	buf := make([]byte, 1024)
	for {
		n, err := dl.Body.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			break
		}
	}
	dl.Body.Close()
	if got.String() != content {
		t.Errorf("destination holds %d bytes, want %d", got.Len(), len(content))
	}
	a.Copies.Wait() // the lines written behind the answers, too
	if out := logs.String(); strings.Contains(out, "sig=") && !strings.Contains(out, "sig="+redact.Placeholder) {
		t.Errorf("a SAS signature reached the log")
	}
}

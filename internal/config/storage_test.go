package config

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// settings is a Lookup over a map with exact names, enough for these tests.
type settings map[string]string

func (s settings) Lookup(name string) (string, bool) {
	v, ok := s[name]
	return v, ok
}

// testKey is base64 of "not a real key, only a test key!".
const testKey = "bm90IGEgcmVhbCBrZXksIG9ubHkgYSB0ZXN0IGtleSE="

func TestParseConnectionString(t *testing.T) {
	tests := []struct {
		name string
		conn string
		want StorageAccount
	}{
		{
			name: "development storage",
			conn: "UseDevelopmentStorage=true",
			want: StorageAccount{Name: "devstoreaccount1", AccountKey: DevStoreAccountKey, BlobEndpoint: "http://127.0.0.1:10000/devstoreaccount1", QueueEndpoint: "http://127.0.0.1:10001/devstoreaccount1"},
		},
		{
			name: "development storage with proxy and odd case",
			conn: "usedevelopmentstorage=True;DevelopmentStorageProxyUri=http://ipv4.fiddler",
			want: StorageAccount{Name: "devstoreaccount1", AccountKey: DevStoreAccountKey, BlobEndpoint: DevStoreBlobEndpoint, QueueEndpoint: DevStoreQueueEndpoint},
		},
		{
			name: "account key with default suffix",
			conn: "DefaultEndpointsProtocol=https;AccountName=myacct;AccountKey=" + testKey,
			want: StorageAccount{Name: "myacct", AccountKey: testKey, BlobEndpoint: "https://myacct.blob.core.windows.net", QueueEndpoint: "https://myacct.queue.core.windows.net"},
		},
		{
			name: "case-insensitive keys, suffix, trailing semicolon",
			conn: "defaultendpointsprotocol=http; accountname=myacct ;ACCOUNTKEY=" + testKey + ";EndpointSuffix=core.chinacloudapi.cn;",
			want: StorageAccount{Name: "myacct", AccountKey: testKey, BlobEndpoint: "http://myacct.blob.core.chinacloudapi.cn", QueueEndpoint: "http://myacct.queue.core.chinacloudapi.cn"},
		},
		{
			name: "Azurite explicit endpoints",
			conn: "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + DevStoreAccountKey + ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;",
			want: StorageAccount{Name: "devstoreaccount1", AccountKey: DevStoreAccountKey, BlobEndpoint: DevStoreBlobEndpoint, QueueEndpoint: DevStoreQueueEndpoint},
		},
		{
			name: "SAS with endpoints only",
			conn: "BlobEndpoint=https://acct2.blob.core.windows.net/;QueueEndpoint=https://acct2.queue.core.windows.net;SharedAccessSignature=?sv=2022-11-02&ss=bq&sig=abc%3D",
			want: StorageAccount{Name: "acct2", SAS: "sv=2022-11-02&ss=bq&sig=abc%3D", BlobEndpoint: "https://acct2.blob.core.windows.net", QueueEndpoint: "https://acct2.queue.core.windows.net"},
		},
		{
			name: "path-style SAS names the account from the path",
			conn: "BlobEndpoint=http://127.0.0.1:10000/acct3;SharedAccessSignature=sig=x",
			want: StorageAccount{Name: "acct3", SAS: "sig=x", BlobEndpoint: "http://127.0.0.1:10000/acct3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseConnectionString(tt.conn)
			if err != nil {
				t.Fatal(err)
			}
			if !accountsEqual(got, tt.want) {
				t.Errorf("got  %#v\nwant %#v", fields(got), fields(tt.want))
			}
		})
	}
}

func accountsEqual(a, b StorageAccount) bool {
	if (a.Identity == nil) != (b.Identity == nil) || a.Identity != nil && *a.Identity != *b.Identity {
		return false
	}
	a.Identity, b.Identity = nil, nil
	return a == b
}

// fields prints every field, the key included, for test failure messages.
func fields(a StorageAccount) string {
	id := "<nil>"
	if a.Identity != nil {
		id = fmt.Sprintf("%+v", *a.Identity)
	}
	return fmt.Sprintf("{Name:%q Blob:%q Queue:%q Key:%q SAS:%q Identity:%s}", a.Name, a.BlobEndpoint, a.QueueEndpoint, a.AccountKey, a.SAS, id)
}

func TestParseConnectionStringErrors(t *testing.T) {
	tests := []struct {
		conn, wantErr string
	}{
		{"", "empty"},
		{";;", "empty"},
		{"UseDevelopmentStorage=false", "UseDevelopmentStorage"},
		{"AccountName=myacct;AccountKey=not*base64!", "AccountKey is not valid base64"},
		{"AccountName=myacct", "neither AccountKey nor SharedAccessSignature"},
		{"AccountKey=" + testKey, "neither AccountName nor BlobEndpoint"},
		{"BlobEndpoint=https://cdn.example.com;AccountKey=" + testKey, "AccountKey needs AccountName"},
		{"DefaultEndpointsProtocol=ftp;AccountName=myacct;AccountKey=" + testKey, "DefaultEndpointsProtocol"},
		{"AccountName=My_Acct;AccountKey=" + testKey, "AccountName"},
		{"AccountName=myacct;AccountKey=" + testKey + ";BlobEndpoint=not a url", "BlobEndpoint"},
		{"AccountName=myacct;AccountKey=" + testKey + ";QueueEndpoint=ftp://x", "QueueEndpoint"},
		{"AccountName=myacct;garbage", "Key=Value"},
	}
	for _, tt := range tests {
		t.Run(tt.conn, func(t *testing.T) {
			_, err := ParseConnectionString(tt.conn)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestResolveStorage(t *testing.T) {
	tests := []struct {
		name     string
		settings settings
		prefix   string
		want     StorageAccount
	}{
		{
			name:     "connection string wins over identity settings",
			settings: settings{"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AzureWebJobsStorage__accountName": "other"},
			prefix:   "AzureWebJobsStorage",
			want:     StorageAccount{Name: DevStoreAccountName, AccountKey: DevStoreAccountKey, BlobEndpoint: DevStoreBlobEndpoint, QueueEndpoint: DevStoreQueueEndpoint},
		},
		{
			name:     "empty connection string falls back to identity",
			settings: settings{"AzureWebJobsStorage": "", "AzureWebJobsStorage__accountName": "myacct"},
			prefix:   "AzureWebJobsStorage",
			want:     StorageAccount{Name: "myacct", BlobEndpoint: "https://myacct.blob.core.windows.net", QueueEndpoint: "https://myacct.queue.core.windows.net", Identity: &Identity{}},
		},
		{
			name:     "user-assigned managed identity",
			settings: settings{"CopyStorage__accountName": "myacct", "CopyStorage__credential": "ManagedIdentity", "CopyStorage__clientId": "1111-2222"},
			prefix:   "CopyStorage",
			want:     StorageAccount{Name: "myacct", BlobEndpoint: "https://myacct.blob.core.windows.net", QueueEndpoint: "https://myacct.queue.core.windows.net", Identity: &Identity{Credential: "managedidentity", ClientID: "1111-2222"}},
		},
		{
			name:     "service URIs",
			settings: settings{"S__blobServiceUri": "https://acct9.blob.core.windows.net/", "S__queueServiceUri": "https://acct9.queue.core.windows.net"},
			prefix:   "S",
			want:     StorageAccount{Name: "acct9", BlobEndpoint: "https://acct9.blob.core.windows.net", QueueEndpoint: "https://acct9.queue.core.windows.net", Identity: &Identity{}},
		},
		{
			name:     "blob URI alone implies the queue URI",
			settings: settings{"S__blobServiceUri": "https://acct9.blob.core.usgovcloudapi.net"},
			prefix:   "S",
			want:     StorageAccount{Name: "acct9", BlobEndpoint: "https://acct9.blob.core.usgovcloudapi.net", QueueEndpoint: "https://acct9.queue.core.usgovcloudapi.net", Identity: &Identity{}},
		},
		{
			name:     "serviceUri alias",
			settings: settings{"S__serviceUri": "https://acct9.blob.core.windows.net"},
			prefix:   "S",
			want:     StorageAccount{Name: "acct9", BlobEndpoint: "https://acct9.blob.core.windows.net", QueueEndpoint: "https://acct9.queue.core.windows.net", Identity: &Identity{}},
		},
		{
			name:     "path-style loopback URIs",
			settings: settings{"S__blobServiceUri": "http://127.0.0.1:10000/acct2", "S__queueServiceUri": "http://127.0.0.1:10001/acct2"},
			prefix:   "S",
			want:     StorageAccount{Name: "acct2", BlobEndpoint: "http://127.0.0.1:10000/acct2", QueueEndpoint: "http://127.0.0.1:10001/acct2", Identity: &Identity{}},
		},
		{
			name:     "account name with URI overrides",
			settings: settings{"S__accountName": "acct5", "S__blobServiceUri": "http://localhost:10000/acct5"},
			prefix:   "S",
			want:     StorageAccount{Name: "acct5", BlobEndpoint: "http://localhost:10000/acct5", QueueEndpoint: "https://acct5.queue.core.windows.net", Identity: &Identity{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ResolveStorage(tt.settings, tt.prefix)
			if err != nil {
				t.Fatal(err)
			}
			if !accountsEqual(got, tt.want) {
				t.Errorf("got  %s\nwant %s", fields(got), fields(tt.want))
			}
		})
	}
}

func TestResolveStorageErrorsNameTheSetting(t *testing.T) {
	tests := []struct {
		name     string
		settings settings
		wantErr  string
	}{
		{
			name:    "nothing set",
			wantErr: `storage connection "AzureWebJobsStorage" is not configured: set AzureWebJobsStorage (a connection string) or AzureWebJobsStorage__accountName / AzureWebJobsStorage__blobServiceUri`,
		},
		{name: "bad key", settings: settings{"AzureWebJobsStorage": "AccountName=a1b;AccountKey=%%%"}, wantErr: "AzureWebJobsStorage: AccountKey is not valid base64"},
		{name: "bad credential", settings: settings{"AzureWebJobsStorage__accountName": "myacct", "AzureWebJobsStorage__credential": "clientsecret"}, wantErr: "AzureWebJobsStorage__credential"},
		{name: "bad account name", settings: settings{"AzureWebJobsStorage__accountName": "UPPER"}, wantErr: "AzureWebJobsStorage__accountName"},
		{name: "bad blob URI", settings: settings{"AzureWebJobsStorage__blobServiceUri": "acct.blob.core.windows.net"}, wantErr: "AzureWebJobsStorage__blobServiceUri"},
		{name: "bad queue URI", settings: settings{"AzureWebJobsStorage__accountName": "myacct", "AzureWebJobsStorage__queueServiceUri": "https://x/?sig=1"}, wantErr: "AzureWebJobsStorage__queueServiceUri"},
		{name: "name not derivable", settings: settings{"AzureWebJobsStorage__blobServiceUri": "https://files.example.com"}, wantErr: "AzureWebJobsStorage__accountName"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ResolveStorage(tt.settings, "AzureWebJobsStorage")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestStringNeverShowsSecrets(t *testing.T) {
	accounts := []StorageAccount{
		{Name: "myacct", AccountKey: testKey, BlobEndpoint: "https://myacct.blob.core.windows.net"},
		{Name: "myacct", SAS: "sv=2022&sig=SECRETSIG", BlobEndpoint: "https://myacct.blob.core.windows.net"},
		{Name: DevStoreAccountName, AccountKey: DevStoreAccountKey, BlobEndpoint: DevStoreBlobEndpoint},
	}
	for _, a := range accounts {
		var logged bytes.Buffer
		slog.New(slog.NewJSONHandler(&logged, nil)).Info("storage", "account", a)
		renderings := []string{a.String(), fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s", a, a, a, a), logged.String()}
		for _, r := range renderings {
			for _, secret := range []string{a.AccountKey, a.SAS} {
				if secret != "" && strings.Contains(r, secret) {
					t.Errorf("rendering leaks a secret: %s", r)
				}
			}
			if !strings.Contains(r, a.Name) {
				t.Errorf("rendering %q does not name the account", r)
			}
		}
	}
	id := StorageAccount{Name: "myacct", Identity: &Identity{Credential: "managedidentity", ClientID: "cid"}}
	if s := id.String(); !strings.Contains(s, "managedidentity") || !strings.Contains(s, "cid") {
		t.Errorf("identity String() = %q", s)
	}
}

func TestUsesKeyAndConnectionStringRoundTrip(t *testing.T) {
	tests := []struct {
		name        string
		acct        StorageAccount
		wantUsesKey bool
	}{
		{name: "azurite", acct: StorageAccount{Name: DevStoreAccountName, AccountKey: DevStoreAccountKey, BlobEndpoint: DevStoreBlobEndpoint, QueueEndpoint: DevStoreQueueEndpoint}, wantUsesKey: true},
		{name: "azure key", acct: StorageAccount{Name: "myacct", AccountKey: testKey, BlobEndpoint: "https://myacct.blob.core.windows.net", QueueEndpoint: "https://myacct.queue.core.windows.net"}, wantUsesKey: true},
		{name: "sas", acct: StorageAccount{Name: "myacct", SAS: "sv=1&sig=a%3D", BlobEndpoint: "https://myacct.blob.core.windows.net", QueueEndpoint: "https://myacct.queue.core.windows.net"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.acct.UsesKey() != tt.wantUsesKey {
				t.Errorf("UsesKey() = %v", tt.acct.UsesKey())
			}
			conn := tt.acct.ConnectionString()
			back, err := ParseConnectionString(conn)
			if err != nil {
				t.Fatalf("parse %q: %v", conn, err)
			}
			if !accountsEqual(back, tt.acct) {
				t.Errorf("round trip through %q gave %s", conn, fields(back))
			}
		})
	}
	identity := StorageAccount{Name: "myacct", BlobEndpoint: "https://myacct.blob.core.windows.net", Identity: &Identity{}}
	if identity.UsesKey() || identity.ConnectionString() != "" {
		t.Errorf("identity account: UsesKey %v, ConnectionString %q", identity.UsesKey(), identity.ConnectionString())
	}
}

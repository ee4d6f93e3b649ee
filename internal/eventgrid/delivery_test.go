package eventgrid

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// header builds an http.Header from name, value pairs.
func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// assertJSONEqual compares two JSON documents for equal content.
func assertJSONEqual(t testing.TB, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want is not JSON: %v\n%s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("JSON differs\ngot:  %s\nwant: %s", got, want)
	}
}

func mustTime(t testing.TB, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}

const (
	storageTopic  = "/subscriptions/{subscription-id}/resourceGroups/Storage/providers/Microsoft.Storage/storageAccounts/my-storage-account"
	blobCreatedID = "831e1650-001e-001b-66ab-eeb76e069631"

	blobCreatedData = `{
		"api": "PutBlockList",
		"clientRequestId": "6d79dbfb-0e37-4fc4-981f-442c9ca65760",
		"requestId": "831e1650-001e-001b-66ab-eeb76e000000",
		"eTag": "\"0x8D4BCC2E4835CD0\"",
		"contentType": "text/plain",
		"contentLength": 524288,
		"blobType": "BlockBlob",
		"url": "https://my-storage-account.blob.core.windows.net/testcontainer/new-file.txt",
		"sequencer": "00000000000004420000000000028963",
		"storageDiagnostics": {"batchId": "b68529f3-68cd-4744-baa4-3c0498ec19f0"}}`
	blobDeletedData = `{
		"api": "DeleteBlob",
		"requestId": "4c2359fe-001e-00ba-0e04-585868000000",
		"contentType": "text/plain",
		"blobType": "BlockBlob",
		"url": "https://my-storage-account.blob.core.windows.net/testcontainer/file-to-delete.txt",
		"sequencer": "0000000000000281000000000002F5CA",
		"storageDiagnostics": {"batchId": "b68529f3-68cd-4744-baa4-3c0498ec19f0"}}`
	sftpCreatedData = `{
		"api": "SftpCommit",
		"requestId": "831e1650-001e-001b-66ab-eeb76e000000",
		"eTag": "\"0x8D4BCC2E4835CD0\"",
		"contentType": "application/octet-stream",
		"contentLength": 0,
		"contentOffset": 0,
		"blobType": "BlockBlob",
		"url": "https://my-storage-account.blob.core.windows.net/testcontainer/new-file.txt",
		"sequencer": "00000000000004420000000000028963",
		"identity": "localuser",
		"storageDiagnostics": {"batchId": "b68529f3-68cd-4744-baa4-3c0498ec19f0"}}`
	ceSingleData = `{
		"api": "PutBlockList",
		"clientRequestId": "4c5dd7fb-2c48-4a27-bb30-5361b5de920a",
		"requestId": "9aeb0fdf-c01e-0131-0922-9eb549000000",
		"eTag": "0x8D76C39E4407333",
		"contentType": "image/png",
		"contentLength": 30699,
		"blobType": "BlockBlob",
		"url": "https://gridtesting.blob.core.windows.net/testcontainer/{new-file}",
		"sequencer": "000000000000000000000000000099240000000000c41c18",
		"storageDiagnostics": {"batchId": "681fe319-3006-00a8-0022-9e7cde000000"}}`
	validationData = `{
		"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
		"validationUrl": "https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/myeventsub/validate?id=0000000000-0000-0000-0000-00000000000000&t=2022-10-28T04:23:35.1981776Z&apiVersion=2018-05-01-preview&token=1A1A1A1A"}`
	mixedThirdData = `{
		"api": "CopyBlob",
		"clientRequestId": "00000000-0000-0000-0000-000000000003",
		"requestId": "b1f0c2d4-0000-0000-0000-000000000000",
		"eTag": "\"0x8DC69B5A1B2C3D4\"",
		"contentType": "text/csv",
		"contentLength": 1048576,
		"blobType": "BlockBlob",
		"url": "https://my-storage-account.blob.core.windows.net/incoming/2024/05/report%20final.csv",
		"sequencer": "0000000000000000000000000000A1B2000000000000C3D4"}`
)

func TestParseDelivery(t *testing.T) {
	egBlobCreated := Event{
		ID: blobCreatedID, Type: TypeBlobCreated, Source: storageTopic,
		Subject: "/blobServices/default/containers/test-container/blobs/new-file.txt",
		Time:    mustTime(t, "2017-06-26T18:41:00.9584103Z"),
		Data:    json.RawMessage(blobCreatedData), Schema: SchemaEventGrid,
	}
	egBlobDeleted := Event{
		ID: "4c2359fe-001e-00ba-0e04-58586806d298", Type: TypeBlobDeleted, Source: storageTopic,
		Subject: "/blobServices/default/containers/testcontainer/blobs/file-to-delete.txt",
		Time:    mustTime(t, "2017-11-07T20:09:22.5674003Z"),
		Data:    json.RawMessage(blobDeletedData), Schema: SchemaEventGrid,
	}
	sftpCreated := Event{
		ID: blobCreatedID, Type: TypeBlobCreated, Source: storageTopic,
		Subject: "/blobServices/default/containers/testcontainer/blobs/new-file.txt",
		Time:    mustTime(t, "2022-04-25T19:13:00.1522383Z"),
		Data:    json.RawMessage(sftpCreatedData), Schema: SchemaEventGrid,
	}
	ceBlobCreated := egBlobCreated
	ceBlobCreated.Schema = SchemaCloudEvents
	ceSftpCreated := sftpCreated
	ceSftpCreated.Schema = SchemaCloudEvents
	ceSingle := Event{
		ID: "9aeb0fdf-c01e-0131-0922-9eb54906e209", Type: TypeBlobCreated,
		Source:  "/subscriptions/{subscription-id}/resourceGroups/{resource-group}/providers/Microsoft.Storage/storageAccounts/{storage-account}",
		Subject: "blobServices/default/containers/{storage-container}/blobs/{new-file}",
		Time:    mustTime(t, "2019-11-18T15:13:39.4589254Z"),
		Data:    json.RawMessage(ceSingleData), Schema: SchemaCloudEvents,
	}
	validation := Event{
		ID: "2d1781af-3a4c-4d7c-bd0c-e34b19da4e66", Type: TypeSubscriptionValidation,
		Source: "/subscriptions/xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", Subject: "",
		Time: mustTime(t, "2022-10-28T04:23:35.1981776Z"),
		Data: json.RawMessage(validationData), Schema: SchemaEventGrid,
	}
	mixedThird := Event{
		ID: "b1f0c2d4-0000-0000-0000-000000000003", Type: TypeBlobCreated, Source: storageTopic,
		Subject: "/blobServices/default/containers/incoming/blobs/2024/05/report final.csv",
		Time:    mustTime(t, "2024-05-01T08:00:00Z"),
		Data:    json.RawMessage(mixedThirdData), Schema: SchemaEventGrid,
	}
	noZone := Event{
		ID: "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", Type: "Microsoft.Storage.LifecyclePolicyCompleted",
		Source:  "/subscriptions/xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx/resourceGroups/contosoresourcegroup/providers/Microsoft.Storage/storageAccounts/contosostorageaccount",
		Subject: "BlobDataManagement/LifeCycleManagement/SummaryReport",
		Time:    time.Date(2022, 5, 26, 0, 0, 40, 188033100, time.UTC),
		Data:    json.RawMessage(`{"scheduleTime": "2022/05/24 22:57:29.3260160"}`), Schema: SchemaEventGrid,
	}
	base64Event := Event{
		ID: "9aeb0fdf-c01e-0131-0922-9eb54906e20a", Type: TypeBlobCreated, Source: storageTopic,
		Subject: "/blobServices/default/containers/testcontainer/blobs/new-file.txt",
		Data:    json.RawMessage(`{"api":"PutBlob","contentLength":5}`), Schema: SchemaCloudEvents,
	}
	notification := header("Content-Type", "application/json; charset=utf-8", HeaderEventType, EventTypeNotification)

	tests := []struct {
		name    string
		fixture string
		header  http.Header
		want    Delivery
	}{
		{"event grid blob created", "eventgrid-blob-created.json", notification,
			Delivery{Schema: SchemaEventGrid, Events: []Event{egBlobCreated}}},
		{"event grid blob created without headers", "eventgrid-blob-created.json", http.Header{},
			Delivery{Schema: SchemaEventGrid, Events: []Event{egBlobCreated}}},
		{"event grid blob deleted", "eventgrid-blob-deleted.json", notification,
			Delivery{Schema: SchemaEventGrid, Events: []Event{egBlobDeleted}}},
		{"event grid sftp blob created", "eventgrid-blob-created-sftp.json", notification,
			Delivery{Schema: SchemaEventGrid, Events: []Event{sftpCreated}}},
		{"subscription validation", "eventgrid-subscription-validation.json",
			header("Content-Type", "application/json", HeaderEventType, EventTypeSubscriptionValidation),
			Delivery{Schema: SchemaEventGrid, Events: []Event{validation}, Validation: &SubscriptionValidationData{
				ValidationCode: "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
				ValidationURL:  "https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/myeventsub/validate?id=0000000000-0000-0000-0000-00000000000000&t=2022-10-28T04:23:35.1981776Z&apiVersion=2018-05-01-preview&token=1A1A1A1A",
			}}},
		{"cloudevents batch", "cloudevents-blob-created-batch.json",
			header("Content-Type", ContentTypeCloudEventsBatch+"; charset=utf-8", HeaderEventType, EventTypeNotification),
			Delivery{Schema: SchemaCloudEvents, Events: []Event{ceBlobCreated}}},
		{"cloudevents array under the single content type", "cloudevents-blob-created-batch.json",
			header("Content-Type", ContentTypeCloudEvents),
			Delivery{Schema: SchemaCloudEvents, Events: []Event{ceBlobCreated}}},
		{"cloudevents array sniffed", "cloudevents-blob-created-batch.json", header("Content-Type", "application/json"),
			Delivery{Schema: SchemaCloudEvents, Events: []Event{ceBlobCreated}}},
		{"cloudevents sftp batch", "cloudevents-blob-created-sftp-batch.json", header("Content-Type", ContentTypeCloudEventsBatch),
			Delivery{Schema: SchemaCloudEvents, Events: []Event{ceSftpCreated}}},
		{"cloudevents single", "cloudevents-blob-created.json",
			header("Content-Type", "Application/CloudEvents+JSON; charset=utf-8"),
			Delivery{Schema: SchemaCloudEvents, Events: []Event{ceSingle}}},
		{"cloudevents single sniffed", "cloudevents-blob-created.json", header("Content-Type", "application/json"),
			Delivery{Schema: SchemaCloudEvents, Events: []Event{ceSingle}}},
		{"mixed batch", "composed/eventgrid-mixed-batch.json", notification,
			Delivery{Schema: SchemaEventGrid, Events: []Event{egBlobCreated, egBlobDeleted, mixedThird}}},
		{"time without zone is UTC", "composed/eventgrid-time-without-zone.json", notification,
			Delivery{Schema: SchemaEventGrid, Events: []Event{noZone}}},
		{"cloudevents data_base64 decoded", "composed/cloudevents-data-base64.json", header("Content-Type", ContentTypeCloudEvents),
			Delivery{Schema: SchemaCloudEvents, Events: []Event{base64Event}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDelivery(tt.header, readFixture(t, tt.fixture))
			if err != nil {
				t.Fatalf("ParseDelivery: %v", err)
			}
			assertDelivery(t, got, tt.want)
		})
	}
}

func assertDelivery(t *testing.T, got, want Delivery) {
	t.Helper()
	if got.Schema != want.Schema {
		t.Errorf("Schema = %q, want %q", got.Schema, want.Schema)
	}
	if !reflect.DeepEqual(got.Validation, want.Validation) {
		t.Errorf("Validation = %+v, want %+v", got.Validation, want.Validation)
	}
	if len(got.Events) != len(want.Events) {
		t.Fatalf("got %d events, want %d", len(got.Events), len(want.Events))
	}
	for i := range want.Events {
		g, w := got.Events[i], want.Events[i]
		if g.ID != w.ID || g.Type != w.Type || g.Source != w.Source || g.Subject != w.Subject || g.Schema != w.Schema {
			t.Errorf("event[%d] = %+v\nwant %+v", i, g, w)
		}
		if !g.Time.Equal(w.Time) {
			t.Errorf("event[%d].Time = %v, want %v", i, g.Time, w.Time)
		}
		assertJSONEqual(t, g.Data, w.Data)
	}
}

func TestParseDeliveryErrors(t *testing.T) {
	egEvent := func(fields string) string {
		return `[{"id":"1","topic":"/t","subject":"/s","eventType":"T","eventTime":"2024-01-01T00:00:00Z",` +
			`"data":{},"dataVersion":"","metadataVersion":"1"` + fields + `}]`
	}
	without := func(attr string) string {
		b := readFixture(t, "eventgrid-blob-created.json")
		var v []map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		delete(v[0], attr)
		out, _ := json.Marshal(v)
		return string(out)
	}
	ceWithout := func(attr string) string {
		var v map[string]any
		if err := json.Unmarshal(readFixture(t, "cloudevents-blob-created.json"), &v); err != nil {
			t.Fatal(err)
		}
		delete(v, attr)
		out, _ := json.Marshal(v)
		return string(out)
	}
	tooMany := "[" + strings.TrimSuffix(strings.Repeat(egEvent("")[1:len(egEvent(""))-1]+",", MaxEvents+1), ",") + "]"
	ce := header("Content-Type", ContentTypeCloudEvents)
	notification := header(HeaderEventType, EventTypeNotification)

	tests := []struct {
		name       string
		fixture    string // file under testdata, or
		body       string // an inline body
		header     http.Header
		index      int
		field      string
		reason     string // substring of Reason
		wantString string // the whole Error(), when set
	}{
		{name: "not JSON", fixture: "composed/not-json.txt", header: notification, index: -1, reason: "not valid JSON",
			wantString: "body: not valid JSON"},
		{name: "object where an array is expected (docs sample)", fixture: "eventgrid-lifecycle-policy-completed.json",
			header: notification, index: -1, reason: "want a JSON array of Event Grid events, got an object"},
		{name: "missing id", fixture: "composed/eventgrid-missing-id.json", header: notification,
			index: 1, field: "id", reason: "missing", wantString: "event[1].id: missing"},
		{name: "wrong specversion", fixture: "composed/cloudevents-wrong-specversion.json", header: ce,
			index: 0, field: "specversion", wantString: `event[0].specversion: must be "1.0", got "0.1"`},
		{name: "validation mixed with other events", fixture: "composed/eventgrid-validation-mixed.json",
			header: header(HeaderEventType, EventTypeSubscriptionValidation), index: 1, field: "eventType",
			reason: "alone in its batch"},
		{name: "empty array", fixture: "composed/eventgrid-empty-array.json", header: notification,
			index: -1, wantString: "body: no events: empty array"},
		{name: "validation header, notification body", fixture: "eventgrid-blob-created.json",
			header: header(HeaderEventType, EventTypeSubscriptionValidation), index: -1, field: HeaderEventType,
			reason: "holds no " + TypeSubscriptionValidation},
		{name: "notification header, validation body", fixture: "eventgrid-subscription-validation.json",
			header: notification, index: -1, field: HeaderEventType, reason: "but the body is a"},

		{name: "empty body", body: "  \n", index: -1, wantString: "body: empty"},
		{name: "JSON string", body: `"hello"`, index: -1, reason: "want a JSON array or object"},
		{name: "truncated array", body: `[{"id":"1"`, index: -1, reason: "not valid JSON"},
		{name: "data after the array", body: egEvent("") + ` []`, index: -1, reason: "data after the array"},
		{name: "too many events", body: tooMany, index: -1, reason: "more than 5000 events"},
		{name: "element not an object", body: `[1]`, index: 0, wantString: "event[0]: want a JSON object, got number"},
		{name: "id of the wrong type", body: `[{"id":5}]`, index: 0, field: "id", wantString: "event[0].id: want a string, got number"},
		{name: "missing eventType", body: without("eventType"), index: 0, field: "eventType", reason: "missing"},
		{name: "missing subject", body: without("subject"), index: 0, field: "subject", reason: "missing"},
		{name: "missing eventTime", body: without("eventTime"), index: 0, field: "eventTime", reason: "missing"},
		{name: "missing data", body: without("data"), index: 0, field: "data", reason: "missing"},
		{name: "missing dataVersion", body: without("dataVersion"), index: 0, field: "dataVersion", reason: "missing"},
		{name: "null data", body: strings.Replace(egEvent(""), `"data":{}`, `"data":null`, 1), index: 0, field: "data", reason: "missing"},
		{name: "empty id", body: strings.Replace(egEvent(""), `"id":"1"`, `"id":""`, 1), index: 0, field: "id", reason: "missing"},
		{name: "bad eventTime", body: strings.Replace(egEvent(""), `2024-01-01T00:00:00Z`, `yesterday`, 1),
			index: 0, field: "eventTime", reason: "not an RFC 3339 time"},
		{name: "validation without code", index: 0, field: "data.validationCode", reason: "missing",
			body: `[{"id":"1","topic":"/t","subject":"","eventType":"` + TypeSubscriptionValidation +
				`","eventTime":"2024-01-01T00:00:00Z","data":{"validationUrl":"https://x"},"dataVersion":"1"}]`},
		{name: "validation code of the wrong type", index: 0, field: "data.validationCode", reason: "want a string",
			body: `[{"id":"1","topic":"/t","subject":"","eventType":"` + TypeSubscriptionValidation +
				`","eventTime":"2024-01-01T00:00:00Z","data":{"validationCode":1},"dataVersion":"1"}]`},
		{name: "cloudevent missing id", body: ceWithout("id"), header: ce, index: 0, field: "id", reason: "missing"},
		{name: "cloudevent missing source", body: ceWithout("source"), header: ce, index: 0, field: "source", reason: "missing"},
		{name: "cloudevent missing type", body: ceWithout("type"), header: ce, index: 0, field: "type", reason: "missing"},
		{name: "cloudevent missing specversion", body: ceWithout("specversion"), header: ce, index: 0, field: "specversion", reason: "missing"},
		{name: "cloudevent bad time", header: ce, index: 0, field: "time", reason: "not an RFC 3339 time",
			body: `{"specversion":"1.0","id":"1","source":"/s","type":"T","time":"noon"}`},
		{name: "cloudevent data and data_base64", header: ce, index: 0, field: "data_base64", reason: "must not be present with data",
			body: `{"specversion":"1.0","id":"1","source":"/s","type":"T","data":{},"data_base64":"e30="}`},
		{name: "cloudevent data_base64 not JSON", header: ce, index: 0, field: "data_base64", reason: "decoded data is not JSON",
			body: `{"specversion":"1.0","id":"1","source":"/s","type":"T","data_base64":"aGVsbG8="}`},
		{name: "cloudevent data_base64 not base64", header: ce, index: 0, field: "data_base64", reason: "not valid base64",
			body: `{"specversion":"1.0","id":"1","source":"/s","type":"T","data_base64":"%%%"}`},
		{name: "cloudevent not JSON", header: ce, body: `{"specversion":`, index: -1, reason: "not valid JSON"},
		{name: "cloudevents batch second event bad", header: header("Content-Type", ContentTypeCloudEventsBatch), index: 1,
			field: "type", reason: "missing",
			body: `[{"specversion":"1.0","id":"1","source":"/s","type":"T"},{"specversion":"1.0","id":"2","source":"/s"}]`},
		{name: "binary content mode", header: header("ce-specversion", "1.0", "ce-id", "1"), body: `{"api":"PutBlob"}`,
			index: -1, field: "ce-specversion", reason: "binary content mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			if tt.fixture != "" {
				body = readFixture(t, tt.fixture)
			}
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			d, err := ParseDelivery(h, body)
			if err == nil {
				t.Fatalf("ParseDelivery succeeded: %+v", d)
			}
			var de *DeliveryError
			if !errors.As(err, &de) {
				t.Fatalf("error %T %v is not a *DeliveryError", err, err)
			}
			if de.Index != tt.index || de.Field != tt.field {
				t.Errorf("Index, Field = %d, %q; want %d, %q (%v)", de.Index, de.Field, tt.index, tt.field, err)
			}
			if !strings.Contains(de.Reason, tt.reason) {
				t.Errorf("Reason = %q, want it to contain %q", de.Reason, tt.reason)
			}
			if tt.wantString != "" && !strings.HasPrefix(err.Error(), tt.wantString) {
				t.Errorf("Error() = %q, want %q", err.Error(), tt.wantString)
			}
			if d.Events != nil || d.Validation != nil {
				t.Errorf("a refused delivery returned data: %+v", d)
			}
		})
	}
}

func TestParseDeliveryMaxEventsAccepted(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("[")
	for i := range MaxEvents {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"id":"%d","topic":"/t","subject":"/s","eventType":"T","eventTime":"2024-01-01T00:00:00Z","data":{},"dataVersion":""}`, i)
	}
	b.WriteString("]")
	d, err := ParseDelivery(http.Header{}, b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Events) != MaxEvents || d.Events[MaxEvents-1].ID != fmt.Sprint(MaxEvents-1) {
		t.Errorf("got %d events", len(d.Events))
	}
}

func TestIsDelivery(t *testing.T) {
	tests := []struct {
		name   string
		header http.Header
		body   string
		want   bool
	}{
		{"copy request", header("Content-Type", "application/json"),
			`{"source":"https://a.blob.core.windows.net/c/b","destination":"https://d.blob.core.windows.net/c/b"}`, false},
		{"copy request without content type", http.Header{}, ` {"source":"x"}`, false},
		{"empty body", http.Header{}, ``, false},
		{"broken object", http.Header{}, `{"source":`, false},
		{"event grid array", header("Content-Type", "application/json"), string(readFixture(t, "eventgrid-blob-created.json")), true},
		{"array after whitespace", http.Header{}, "\r\n\t [ ]", true},
		{"aeg-event-type header", header(HeaderEventType, EventTypeNotification), `{"source":"x"}`, true},
		{"cloudevents content type", header("Content-Type", ContentTypeCloudEvents+"; charset=utf-8"), `{}`, true},
		{"cloudevents batch content type", header("Content-Type", ContentTypeCloudEventsBatch), `[]`, true},
		{"cloudevent as application/json", header("Content-Type", "application/json"), string(readFixture(t, "cloudevents-blob-created.json")), true},
		{"binary content mode", header("ce-specversion", "1.0"), `{"source":"x"}`, true},
		// encoding/json matches names as these spell them; so must the probe's shortcut.
		{"specversion in capitals", http.Header{}, `{"SPECVERSION":"1.0","source":"x"}`, true},
		{"specversion escaped", http.Header{}, `{"spec\u0076ersion":"1.0"}`, true},
		{"specversion with a long s", http.Header{}, `{"ſpecversion":"1.0"}`, true},
		{"specversion as a value only", http.Header{}, `{"source":"specversion"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsDelivery(tt.header, []byte(tt.body)); got != tt.want {
				t.Errorf("IsDelivery = %v, want %v", got, tt.want)
			}
		})
	}
}

// The raw shapes round-trip the documentation's samples, as aws-lambda-go's
// events tests do.
func TestRawShapesRoundTrip(t *testing.T) {
	for _, name := range []string{
		"eventgrid-blob-created.json",
		"eventgrid-blob-deleted.json",
		"eventgrid-blob-created-sftp.json",
		"eventgrid-subscription-validation.json",
	} {
		t.Run(name, func(t *testing.T) {
			in := readFixture(t, name)
			var events []EventGridEvent
			if err := json.Unmarshal(in, &events); err != nil {
				t.Fatal(err)
			}
			out, err := json.Marshal(events)
			if err != nil {
				t.Fatal(err)
			}
			assertJSONEqual(t, out, in)
		})
	}
	for _, name := range []string{
		"cloudevents-blob-created-batch.json",
		"cloudevents-blob-created-sftp-batch.json",
	} {
		t.Run(name, func(t *testing.T) {
			in := readFixture(t, name)
			var events []CloudEvent
			if err := json.Unmarshal(in, &events); err != nil {
				t.Fatal(err)
			}
			out, err := json.Marshal(events)
			if err != nil {
				t.Fatal(err)
			}
			assertJSONEqual(t, out, in)
		})
	}
	t.Run("cloudevents-blob-created.json", func(t *testing.T) {
		in := readFixture(t, "cloudevents-blob-created.json")
		var e CloudEvent
		if err := json.Unmarshal(in, &e); err != nil {
			t.Fatal(err)
		}
		if e.DataSchema != "#" || e.SpecVersion != "1.0" {
			t.Errorf("got %+v", e)
		}
		out, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		assertJSONEqual(t, out, in)
	})
	t.Run("eventgrid-lifecycle-policy-completed.json", func(t *testing.T) {
		in := readFixture(t, "eventgrid-lifecycle-policy-completed.json")
		var e EventGridEvent
		if err := json.Unmarshal(in, &e); err != nil {
			t.Fatal(err)
		}
		out, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		assertJSONEqual(t, out, in)
	})
}

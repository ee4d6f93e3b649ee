package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/blobcopy/blobcopy/internal/api"
	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/copyjob/copyjobtest"
	"github.com/blobcopy/blobcopy/internal/rules"
)

func rule(name, srcContainer, dstContainer, prefix string, acceptCopies bool) rules.Rule {
	r := rules.Rule{Name: name, SourceContainer: srcContainer, AcceptCopyEvents: acceptCopies}
	r.Destination.Container, r.Destination.Prefix = dstContainer, prefix
	return r
}

func deliveryResult(t *testing.T, r reply) map[string]api.EventResult {
	t.Helper()
	var d api.DeliveryResult
	if err := json.Unmarshal(r.body, &d); err != nil {
		t.Fatalf("delivery answer: %v: %s", err, r.body)
	}
	out := map[string]api.EventResult{}
	for _, e := range d.Results {
		out[e.ID] = e
	}
	return out
}

// sample reads one of Azure's samples with its subject's container made to agree with
// its data.url: the BlobCreated sample's subject says "test-container" where its url
// says "testcontainer", and the event route refuses events whose url and subject differ.
func sample(t testing.TB, name string) []byte {
	t.Helper()
	return []byte(strings.ReplaceAll(string(readFixture(t, name)), "containers/test-container/", "containers/testcontainer/"))
}

func docsBlob(container, blob string) copyjob.BlobRef {
	return copyjob.BlobRef{Account: "docs", Container: container, Blob: blob}
}

var eventGridHeaders = map[string]string{"aeg-event-type": "Notification", "Content-Type": "application/json"}

func TestEventGridValidationHandshake(t *testing.T) {
	f := newFixture(t, api.Policy{}, nil)
	r := f.do(t, http.MethodPost, "/api/copies", readFixture(t, "eventgrid-subscription-validation.json"),
		map[string]string{"aeg-event-type": "SubscriptionValidation", "Content-Type": "application/json"})
	if r.status != 200 || strings.TrimSpace(string(r.body)) != `{"validationResponse":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}` {
		t.Fatalf("handshake: %d %s", r.status, r.body)
	}
}

func TestCloudEventsAbuseProtectionHandshake(t *testing.T) {
	f := newFixture(t, api.Policy{}, nil)
	// Event Grid sends no function key with OPTIONS: the handshake must not need one.
	r := f.do(t, http.MethodOptions, "/api/copies", nil, map[string]string{"WebHook-Request-Origin": "eventgrid.azure.net", "x-functions-key": ""})
	if r.status != 200 || r.header.Get("WebHook-Allowed-Origin") != "eventgrid.azure.net" || r.header.Get("WebHook-Allowed-Rate") != "*" {
		t.Fatalf("OPTIONS: %d %v", r.status, r.header)
	}
	r = f.do(t, http.MethodOptions, "/api/copies", nil, nil)
	if r.status != 200 || r.header.Get("WebHook-Allowed-Origin") != "" {
		t.Errorf("OPTIONS without origin: %d %v", r.status, r.header)
	}
}

func TestEventGridMixedBatchAndDuplicates(t *testing.T) {
	f := newFixture(t, api.Policy{}, []rules.Rule{
		rule("docs", "testcontainer", "archive", "docs/", false),
		rule("incoming", "incoming", "archive", "copied/", false),
	})
	f.env.Blobs.Put(docsBlob("testcontainer", "new-file.txt"), 524288, nil)
	body := sample(t, "composed/eventgrid-mixed-batch.json")

	r := f.do(t, http.MethodPost, "/api/copies", body, eventGridHeaders)
	if r.status != 200 {
		t.Fatalf("delivery: %d %s", r.status, r.body)
	}
	res := deliveryResult(t, r)
	want := map[string]string{
		"831e1650-001e-001b-66ab-eeb76e069631": "started",
		"4c2359fe-001e-00ba-0e04-58586806d298": "ignored", // BlobDeleted
		"b1f0c2d4-0000-0000-0000-000000000003": "ignored", // raised by Copy Blob: loop guard
	}
	for id, outcome := range want {
		if res[id].Outcome != outcome {
			t.Errorf("event %s: %+v, want %s", id, res[id], outcome)
		}
	}
	calls := f.env.Blobs.StartCopyCalls()
	if len(calls) != 1 || calls[0].Dst.Container != "archive" || calls[0].Dst.Blob != "docs/new-file.txt" {
		t.Fatalf("copies = %+v", calls)
	}
	job := f.env.Records.Job(res["831e1650-001e-001b-66ab-eeb76e069631"].JobID)
	if job == nil || job.Origin != "eventgrid" || job.EventID != "831e1650-001e-001b-66ab-eeb76e069631" {
		t.Fatalf("job record = %+v", job)
	}

	// Event Grid delivers at least once: the same delivery starts nothing new.
	r = f.do(t, http.MethodPost, "/api/copies", body, eventGridHeaders)
	if r.status != 200 || deliveryResult(t, r)["831e1650-001e-001b-66ab-eeb76e069631"].Outcome != "duplicate" {
		t.Fatalf("redelivery: %d %s", r.status, r.body)
	}
	// Nor does another event for the same blob version (same ETag) and destination.
	other := strings.Replace(string(body), "831e1650-001e-001b-66ab-eeb76e069631", "99999999-001e-001b-66ab-eeb76e069631", 1)
	r = f.do(t, http.MethodPost, "/api/copies", []byte(other), eventGridHeaders)
	if got := deliveryResult(t, r)["99999999-001e-001b-66ab-eeb76e069631"]; got.Outcome != "duplicate" || got.JobID != job.ID {
		t.Errorf("same blob version under another event id: %+v", got)
	}
	if n := len(f.env.Blobs.StartCopyCalls()); n != 1 {
		t.Errorf("copies started = %d, want 1", n)
	}
}

func TestEventRuleMissAndCopyEvents(t *testing.T) {
	f := newFixture(t, api.Policy{}, []rules.Rule{rule("incoming", "incoming", "archive", "copied/", true)})
	f.env.Blobs.Put(docsBlob("incoming", "2024/05/report final.csv"), 1048576, nil)
	r := f.do(t, http.MethodPost, "/api/copies", sample(t, "composed/eventgrid-mixed-batch.json"), eventGridHeaders)
	if r.status != 200 {
		t.Fatalf("delivery: %d %s", r.status, r.body)
	}
	res := deliveryResult(t, r)
	if res["831e1650-001e-001b-66ab-eeb76e069631"].Outcome != "noRule" {
		t.Errorf("rule miss: %+v", res["831e1650-001e-001b-66ab-eeb76e069631"])
	}
	if got := res["b1f0c2d4-0000-0000-0000-000000000003"]; got.Outcome != "started" || got.Rule != "incoming" {
		t.Errorf("copy event with acceptCopyEvents: %+v", got)
	}
	calls := f.env.Blobs.StartCopyCalls()
	if len(calls) != 1 || calls[0].Dst.Blob != "copied/2024/05/report final.csv" {
		t.Errorf("copies = %+v", calls)
	}
}

func TestCloudEventsDeliveries(t *testing.T) {
	f := newFixture(t, api.Policy{}, []rules.Rule{rule("photos", "testcontainer", "archive", "", false)})
	fix := func(name string) []byte {
		s := string(readFixture(t, name))
		// The single-event sample's data.url names account gridtesting, container
		// testcontainer: make the subject agree.
		s = strings.NewReplacer("{storage-account}", "gridtesting", "{storage-container}", "testcontainer", "{new-file}", "cat.jpg",
			"containers/test-container/", "containers/testcontainer/").Replace(s)
		return []byte(s)
	}
	f.env.Blobs.PutExternal("https://gridtesting.blob.core.windows.net/testcontainer/cat.jpg", 100) // an account the app has no settings for
	f.env.Blobs.Put(docsBlob("testcontainer", "new-file.txt"), 100, nil)
	single := f.do(t, http.MethodPost, "/api/copies", fix("cloudevents-blob-created.json"), map[string]string{"Content-Type": "application/cloudevents+json; charset=utf-8"})
	if single.status != 200 {
		t.Fatalf("structured CloudEvent: %d %s", single.status, single.body)
	}
	for _, res := range deliveryResult(t, single) {
		if res.Outcome != "started" {
			t.Errorf("single: %+v", res)
		}
	}
	batch := f.do(t, http.MethodPost, "/api/copies", fix("cloudevents-blob-created-batch.json"), map[string]string{"Content-Type": "application/cloudevents-batch+json"})
	if batch.status != 200 {
		t.Fatalf("batch: %d %s", batch.status, batch.body)
	}
	if n := len(f.env.Blobs.StartCopyCalls()); n < 1 {
		t.Errorf("no copy started from CloudEvents")
	}
}

func TestStorageFailureMidBatchIsRetried(t *testing.T) {
	f := newFixture(t, api.Policy{}, []rules.Rule{rule("docs", "testcontainer", "archive", "", false)})
	f.env.Blobs.Put(docsBlob("testcontainer", "new-file.txt"), 1, nil)
	f.env.Blobs.Put(docsBlob("testcontainer", "second.txt"), 1, nil)
	one := string(sample(t, "eventgrid-blob-created.json"))
	two := strings.NewReplacer("new-file.txt", "second.txt", "831e1650-001e-001b-66ab-eeb76e069631", "22222222-001e-001b-66ab-eeb76e069631", "0x8D4BCC2E4835CD0", "0x8D4BCC2E4835CD1").Replace(one)
	batch := []byte(strings.TrimSuffix(strings.TrimSpace(one), "]") + "," + strings.TrimPrefix(strings.TrimSpace(two), "["))

	// One event's job record cannot be written: storage is down mid-batch.
	f.env.Records.FailNext(copyjobtest.OpCreate, errStorageDown)
	r := f.do(t, http.MethodPost, "/api/copies", batch, eventGridHeaders)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503 so Event Grid retries: %s", r.status, r.body)
	}
	res := deliveryResult(t, r)
	failed, started := "", ""
	for id, e := range res {
		switch e.Outcome {
		case "failed":
			failed = id
		case "started":
			started = id
		}
	}
	if failed == "" || started == "" {
		t.Fatalf("results = %+v, want one started and one failed", res)
	}
	// Event Grid's retry: the started one is a duplicate, the failed one starts now.
	r = f.do(t, http.MethodPost, "/api/copies", batch, eventGridHeaders)
	res = deliveryResult(t, r)
	if r.status != 200 || res[started].Outcome != "duplicate" || res[failed].Outcome != "started" {
		t.Fatalf("retry: %d %+v", r.status, res)
	}
	if n := len(f.env.Blobs.StartCopyCalls()); n != 2 {
		t.Errorf("copies started = %d, want 2", n)
	}
}

func TestMalformedDeliveryIs400(t *testing.T) {
	f := newFixture(t, api.Policy{}, nil)
	for _, name := range []string{"composed/eventgrid-missing-id.json", "composed/cloudevents-wrong-specversion.json", "composed/eventgrid-empty-array.json"} {
		ct := "application/json"
		if strings.Contains(name, "cloudevents") {
			ct = "application/cloudevents+json"
		}
		r := f.do(t, http.MethodPost, "/api/copies", readFixture(t, name), map[string]string{"aeg-event-type": "Notification", "Content-Type": ct})
		if r.status != 400 || r.azureError(t).Error.Code != "InvalidEventDelivery" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
}

func TestWebhookRuleForm(t *testing.T) {
	nightly := rule("nightly", "exports", "archive", "nightly/", false)
	nightly.SourceAccount = "app"
	f := newFixture(t, api.Policy{}, []rules.Rule{nightly})
	f.env.Blobs.Put(copyjob.BlobRef{Container: "elsewhere", Blob: "secret.bak"}, 10, nil)
	f.env.Blobs.Put(copyjob.BlobRef{Container: "exports", Blob: "db.bak"}, 10, nil)
	r := f.do(t, http.MethodPost, "/api/copies", []byte(`{"rule":"nightly","source":"https://`+copyjobtest.DefaultHost+`/exports/db.bak"}`), nil)
	if r.status != 202 {
		t.Fatalf("webhook: %d %s", r.status, r.body)
	}
	calls := f.env.Blobs.StartCopyCalls()
	if len(calls) != 1 || calls[0].Dst.Container != "archive" || calls[0].Dst.Blob != "nightly/db.bak" {
		t.Errorf("copies = %+v", calls)
	}
	for _, body := range []string{
		`{"rule":"nope","source":"https://` + copyjobtest.DefaultHost + `/exports/db.bak"}`,
		`{"rule":"nightly","source":"https://` + copyjobtest.DefaultHost + `/exports/db.bak","destination":{"container":"x1x","blob":"y"}}`,
	} {
		if r := f.do(t, http.MethodPost, "/api/copies", []byte(body), nil); r.status != 400 {
			t.Errorf("%s: %d %s", body, r.status, r.body)
		}
	}
	// The source must lie in the rule's source area: another container, another
	// account, a host that is no storage account at all.
	for _, source := range []string{
		"https://" + copyjobtest.DefaultHost + "/elsewhere/secret.bak",
		"https://" + docsHost + "/exports/db.bak",
		"https://169.254.169.254/metadata/instance",
		"https://" + copyjobtest.DefaultHost + "/exports",
	} {
		r := f.do(t, http.MethodPost, "/api/copies", []byte(`{"rule":"nightly","source":"`+source+`"}`), nil)
		if r.status != http.StatusForbidden || r.azureError(t).Error.Code != "SourceNotAllowed" {
			t.Errorf("webhook source %s: %d %s", source, r.status, r.body)
		}
	}
	if n := len(f.env.Blobs.StartCopyCalls()); n != 1 {
		t.Errorf("copies started = %d, want 1", n)
	}
	// The webhook form needs the function key like every other call.
	if r := f.do(t, http.MethodPost, "/api/copies", []byte(`{"rule":"nightly","source":"https://x/y"}`), map[string]string{"x-functions-key": ""}); r.status != 401 {
		t.Errorf("webhook without key: %d", r.status)
	}
}

// A newer version of a blob whose earlier version's copy is still pending on the
// destination: the event waits (200, outcome "waiting", naming its own job), never
// "refused" (Event Grid would drop it, and the newest version would never be copied).
// Its redelivery says the same.
func TestEventForANewerVersionWaitsForThePendingCopy(t *testing.T) {
	f := newFixture(t, api.Policy{}, []rules.Rule{rule("docs", "testcontainer", "archive", "", false)})
	f.env.Blobs.Put(docsBlob("testcontainer", "new-file.txt"), 1, nil)
	f.env.Blobs.SetStartStatus(copyjob.StatusPending)
	v1 := sample(t, "eventgrid-blob-created.json")
	v2 := []byte(strings.NewReplacer("831e1650-001e-001b-66ab-eeb76e069631", "22222222-001e-001b-66ab-eeb76e069631",
		"0x8D4BCC2E4835CD0", "0x8D4BCC2E4835CD1").Replace(string(v1)))
	r := f.do(t, http.MethodPost, "/api/copies", v1, eventGridHeaders)
	first := deliveryResult(t, r)["831e1650-001e-001b-66ab-eeb76e069631"]
	if r.status != http.StatusOK || first.Outcome != "started" {
		t.Fatalf("first version: %d %+v", r.status, first)
	}
	for range 2 { // the delivery, then Event Grid's redelivery of it
		r = f.do(t, http.MethodPost, "/api/copies", v2, eventGridHeaders)
		second := deliveryResult(t, r)["22222222-001e-001b-66ab-eeb76e069631"]
		if r.status != http.StatusOK || second.Outcome != "waiting" || second.JobID == "" || second.JobID == first.JobID {
			t.Fatalf("newer version: %d %+v, want 200, waiting, naming its own job (the first is %s)", r.status, second, first.JobID)
		}
		if j := f.env.Records.Job(second.JobID); j == nil || j.Status != copyjob.StatusStarting {
			t.Fatalf("the waiting event's job: %+v", j)
		}
	}
}

// A rule with leaseSource does not wait: the newer version's event is refused (the
// earlier copy holds the source's lease), and its result names the event's own job,
// which records the refusal.
func TestRefusedEventNamesItsOwnJob(t *testing.T) {
	r0 := rule("docs", "testcontainer", "archive", "", false)
	r0.LeaseSource = true
	f := newFixture(t, api.Policy{}, []rules.Rule{r0})
	f.env.Blobs.Put(docsBlob("testcontainer", "new-file.txt"), 1, nil)
	f.env.Blobs.SetStartStatus(copyjob.StatusPending)
	v1 := sample(t, "eventgrid-blob-created.json")
	v2 := []byte(strings.NewReplacer("831e1650-001e-001b-66ab-eeb76e069631", "22222222-001e-001b-66ab-eeb76e069631",
		"0x8D4BCC2E4835CD0", "0x8D4BCC2E4835CD1").Replace(string(v1)))
	first := deliveryResult(t, f.do(t, http.MethodPost, "/api/copies", v1, eventGridHeaders))["831e1650-001e-001b-66ab-eeb76e069631"]
	if first.Outcome != "started" {
		t.Fatalf("first version: %+v", first)
	}
	second := deliveryResult(t, f.do(t, http.MethodPost, "/api/copies", v2, eventGridHeaders))["22222222-001e-001b-66ab-eeb76e069631"]
	if second.Outcome != "refused" || second.JobID == "" || second.JobID == first.JobID {
		t.Fatalf("newer version with leaseSource: %+v, want refused naming its own job (the first is %s)", second, first.JobID)
	}
	if j := f.env.Records.Job(second.JobID); j == nil || j.Status != copyjob.StatusStartFailed {
		t.Fatalf("the refused event's job: %+v", j)
	}
}

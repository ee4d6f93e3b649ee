package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
)

// eventFigure is figure 6: one Event Grid delivery of N BlobCreated events (about Event
// Grid's 1 MiB batch for N = 1,000), each starting a same-account copy on Azurite,
// answered by the handler binary. Event Grid waits 30 s for an answer; the target is 8 s.
type eventFigure struct {
	Events     int            `json:"events"`
	BodyBytes  int            `json:"bodyBytes"`
	Rows       []eventRunsRow `json:"rows"`
	TargetSecs float64        `json:"targetSeconds"`
}

type eventRunsRow struct {
	Concurrency int       `json:"concurrency"`
	Seconds     []float64 `json:"seconds"`
	Median      float64   `json:"medianSeconds"`
	// CPU is the handler process's CPU seconds per delivery (median): the rest of the
	// wall time is Azurite's.
	CPU []float64 `json:"handlerCpuSeconds"`
}

const eventRules = `[{"name":"load","sourceAccount":"devstoreaccount1","sourceContainer":"load","destination":{"container":"loadcopy"}}]`

// runEvents measures one delivery per run at each concurrency (a fresh set of blobs per
// run: a second delivery of the same events would only find duplicates).
func runEvents(e *env, n, runs int, concurrencies []int) (*eventFigure, error) {
	fig := &eventFigure{Events: n, TargetSecs: 8}
	c := blobService(e.az)
	if _, err := c.CreateContainer(context.Background(), "load", nil); err != nil && !bloberror.HasCode(err, bloberror.ContainerAlreadyExists) {
		return nil, err
	}
	for _, conc := range concurrencies {
		h, err := e.startHandler(fmt.Sprintf("events-%d", conc), e.settings(e.az, map[string]string{
			"COPY_RULES": eventRules, "COPY_EVENT_CONCURRENCY": strconv.Itoa(conc)}))
		if err != nil {
			return nil, err
		}
		row := eventRunsRow{Concurrency: conc}
		for run := range runs {
			body, err := uploadEventBlobs(e, c, n, fmt.Sprintf("c%d-r%d", conc, run))
			if err != nil {
				h.stop()
				return nil, err
			}
			fig.BodyBytes = len(body)
			cpu0 := cpuSeconds(h.pid())
			secs, err := postDelivery(h.base, body, n)
			row.CPU = append(row.CPU, cpuSeconds(h.pid())-cpu0)
			if err != nil {
				h.stop()
				return nil, err
			}
			fmt.Printf("  concurrency %d, run %d: %.2fs (handler CPU %.2fs)\n", conc, run+1, secs, row.CPU[len(row.CPU)-1])
			row.Seconds = append(row.Seconds, secs)
		}
		h.stop()
		row.Median = median(row.Seconds)
		fig.Rows = append(fig.Rows, row)
	}
	return fig, nil
}

// uploadEventBlobs uploads n small blobs and returns the Event Grid delivery announcing
// them, shaped like Azure's BlobCreated sample.
func uploadEventBlobs(e *env, c *azblob.Client, n int, tag string) ([]byte, error) {
	events := make([]string, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			name := fmt.Sprintf("%s/blob-%05d.txt", tag, i)
			resp, err := c.UploadBuffer(context.Background(), "load", name, []byte("event load"), nil)
			if err != nil {
				errs <- err
				return
			}
			u := e.az.BlobEndpoint(devAccount) + "/load/" + name
			events[i] = fmt.Sprintf(`{"topic":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/%s",
"subject":"/blobServices/default/containers/load/blobs/%s","eventType":"Microsoft.Storage.BlobCreated","eventTime":"2026-11-30T10:00:00Z",
"id":"%s-%05d","data":{"api":"PutBlob","clientRequestId":"c","requestId":"r","eTag":%q,"contentType":"text/plain","contentLength":10,"blobType":"BlockBlob","url":%q,"sequencer":"0000000000000000000000000000000000000000000001"},
"dataVersion":"","metadataVersion":"1"}`, devAccount, name, tag, i, string(*resp.ETag), u)
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	return []byte("[" + strings.Join(events, ",") + "]"), nil
}

// postDelivery posts one delivery and checks that every event started a copy.
func postDelivery(base string, body []byte, n int) (float64, error) {
	req, _ := http.NewRequest(http.MethodPost, base+"/api/copies", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("aeg-event-type", "Notification")
	start := time.Now()
	resp, err := apiClient.Do(req)
	if err != nil {
		return 0, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	secs := time.Since(start).Seconds()
	if resp.StatusCode != http.StatusOK {
		return secs, fmt.Errorf("delivery: %d %.300s", resp.StatusCode, b)
	}
	var res struct {
		Results []struct{ Outcome string } `json:"results"`
	}
	if err := json.Unmarshal(b, &res); err != nil || len(res.Results) != n {
		return secs, fmt.Errorf("delivery answer: %v (%d results)", err, len(res.Results))
	}
	for i, r := range res.Results {
		if r.Outcome != "started" {
			return secs, fmt.Errorf("event %d: %s", i, r.Outcome)
		}
	}
	return secs, nil
}

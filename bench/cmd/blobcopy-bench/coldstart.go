package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// Figure 4: cold start (exec of the handler to its first answer) and resident memory.

type coldFigure struct {
	Launches    int       `json:"launches"`
	StartMs     []float64 `json:"startMs"`
	MedianMs    float64   `json:"medianMs"`
	P90Ms       float64   `json:"p90Ms"`
	IdleRSS     []float64 `json:"idleRSSMiB"`
	IdleRSSMiB  float64   `json:"medianIdleRSSMiB"`
	BinaryBytes int64     `json:"binaryBytes"`
	// Retries counts launches repeated because the first try did not answer in 30 s.
	Retries int `json:"retries,omitempty"`
	// The 10,000-job handler (figure 3's big set): RSS at each stage and the peak.
	BigIdleRSS      float64 `json:"bigIdleRSSMiB"`
	BigAfterStarts  float64 `json:"bigAfterStartsRSSMiB"`
	BigAfterTick    float64 `json:"bigAfterTickRSSMiB"`
	BigPeakRSS      float64 `json:"bigPeakRSSMiB"`
	BigJobs         int     `json:"bigJobs"`
	BigTickJobs     int     `json:"bigTickJobs"`
	BigTickSeconds  float64 `json:"bigTickSeconds"`
	BigStartCPU     float64 `json:"bigStartCPUSeconds"`
	BigStartSeconds float64 `json:"bigStartSeconds"`
}

func runColdStart(e *env, launches int) (*coldFigure, error) {
	fig := &coldFigure{Launches: launches}
	if st, err := os.Stat(e.handlerBin); err == nil {
		fig.BinaryBytes = st.Size()
	}
	values := e.settings(e.az, nil)
	for i := range launches {
		// A launch waits for its start-up storage calls: make sure Azurite is not in
		// one of its stalls first, and give a launch that still hits one a second go.
		var (
			h   *handlerProc
			err error
		)
		for try := range 2 {
			if err = e.waitAzurite(2 * time.Minute); err != nil {
				return nil, err
			}
			if h, err = e.startHandler(fmt.Sprintf("cold-%02d-%d", i, try), values); err == nil {
				break
			}
			fmt.Fprintf(os.Stderr, "  note: launch %d failed (%v); trying again\n", i, firstLine(err))
			fig.Retries++
		}
		if err != nil {
			return nil, err
		}
		fig.StartMs = append(fig.StartMs, ms(h.ready))
		time.Sleep(time.Second)
		fig.IdleRSS = append(fig.IdleRSS, rssMiB(h.pid()))
		h.stop()
	}
	fig.MedianMs = median(fig.StartMs)
	fig.P90Ms = percentile(fig.StartMs, 90)
	fig.IdleRSSMiB = median(fig.IdleRSS)
	return fig, nil
}

// waitAzurite returns once Azurite answers a Get Blob Properties within a second.
func (e *env) waitAzurite(limit time.Duration) error {
	c := blobService(e.az).ServiceClient().NewContainerClient(srcContainer).NewBlobClient(srcBlob)
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.GetProperties(ctx, nil)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("azurite not answering within a second for %s: %w", limit, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

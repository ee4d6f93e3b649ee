package api

import (
	"net/url"
	"time"

	"github.com/blobcopy/blobcopy/internal/copyjob"
	"github.com/blobcopy/blobcopy/internal/redact"
)

// The API's answers are their own types, field by field, so what the stored record holds
// for the app alone (the request hash, the lease id, poison reasons, start attempts, the
// callback URL's query) never reaches a caller. openapi.json describes these types.

// JobView is a job as the API shows it.
type JobView struct {
	ID                  string          `json:"id"`
	Origin              string          `json:"origin,omitempty"`
	EventID             string          `json:"eventId,omitempty"`
	Source              SourceView      `json:"source"`
	Destination         DestinationView `json:"destination"`
	Options             OptionsView     `json:"options"`
	CopyID              string          `json:"copyId,omitempty"`
	Status              copyjob.Status  `json:"status"`
	StatusDescription   string          `json:"statusDescription,omitempty"`
	Progress            ProgressView    `json:"progress"`
	Percent             float64         `json:"percent"`
	Lease               *LeaseView      `json:"lease,omitempty"`
	DestinationSnapshot string          `json:"destinationSnapshot,omitempty"`
	RestoredFrom        string          `json:"restoredFrom,omitempty"`
	Callback            *CallbackView   `json:"callback,omitempty"`
	CreatedAt           time.Time       `json:"createdAt"`
	UpdatedAt           time.Time       `json:"updatedAt"`
	StartedAt           *time.Time      `json:"startedAt,omitempty"`
	CompletedAt         *time.Time      `json:"completedAt,omitempty"`
	// History holds the outcomes of earlier attempts, oldest first (POST .../retry).
	History []OutcomeView `json:"history,omitempty"`
	// Links follow the async request-reply pattern (Durable Functions names).
	StatusQueryGetURI string `json:"statusQueryGetUri"`
	AbortPostURI      string `json:"abortPostUri,omitempty"`
	RetryPostURI      string `json:"retryPostUri,omitempty"`
	// Owner is shown to Copies.Admin callers only (caller.go): an owner is a person's
	// or an application's directory object id.
	Owner string `json:"owner,omitempty"`
}

// OutcomeView is an earlier attempt's outcome.
type OutcomeView struct {
	Status            copyjob.Status `json:"status"`
	StatusDescription string         `json:"statusDescription,omitempty"`
	CopyID            string         `json:"copyId,omitempty"`
	StartedAt         *time.Time     `json:"startedAt,omitempty"`
	CompletedAt       *time.Time     `json:"completedAt,omitempty"`
}

// SourceView is the copy's source: its URL never carries a SAS.
type SourceView struct {
	URL          string             `json:"url"`
	Kind         copyjob.SourceKind `json:"kind"`
	Blob         *BlobView          `json:"blob,omitempty"`
	SASExpiresAt *time.Time         `json:"sasExpiresAt,omitempty"`
	SASKind      string             `json:"sasKind,omitempty"`
}

// BlobView names a blob of a configured account.
type BlobView struct {
	Account   string `json:"account,omitempty"`
	Container string `json:"container"`
	Blob      string `json:"blob"`
	Snapshot  string `json:"snapshot,omitempty"`
	VersionID string `json:"versionId,omitempty"`
}

// DestinationView is where the copy writes.
type DestinationView struct {
	Account   string `json:"account,omitempty"`
	Container string `json:"container"`
	Blob      string `json:"blob"`
	URL       string `json:"url"`
}

// OptionsView are the copy options the job runs with.
type OptionsView struct {
	Metadata            map[string]string `json:"metadata,omitempty"`
	Tags                map[string]string `json:"tags,omitempty"`
	Tier                string            `json:"tier,omitempty"`
	Overwrite           bool              `json:"overwrite"`
	RequiresSync        bool              `json:"requiresSync,omitempty"`
	LeaseSource         bool              `json:"leaseSource,omitempty"`
	SnapshotDestination bool              `json:"snapshotDestination,omitempty"`
	SASLifetime         string            `json:"sasLifetime,omitempty"`
	CreateContainer     bool              `json:"createContainer"`
}

// ProgressView is x-ms-copy-progress in bytes.
type ProgressView struct {
	BytesCopied int64 `json:"bytesCopied"`
	BytesTotal  int64 `json:"bytesTotal"`
}

// LeaseView is the state of the source lease; its id stays in the job record.
type LeaseView struct {
	State copyjob.LeaseState `json:"state"`
	// ReleaseRefusals counts releases storage refused in a row (a 403); the next is
	// attempted at NextReleaseAt.
	ReleaseRefusals int        `json:"releaseRefusals,omitempty"`
	NextReleaseAt   *time.Time `json:"nextReleaseAt,omitempty"`
}

// CallbackView is the completion callback's delivery; the URL's query (where receivers
// keep their credential) is shown redacted.
type CallbackView struct {
	URL         string     `json:"url"`
	DeliveryID  string     `json:"deliveryId,omitempty"`
	Attempts    int        `json:"attempts,omitempty"`
	DeliveredAt *time.Time `json:"deliveredAt,omitempty"`
	LastError   string     `json:"lastError,omitempty"`
	GaveUp      bool       `json:"gaveUp,omitempty"`
	// NextAttemptAt: when a failed delivery is attempted again.
	NextAttemptAt *time.Time `json:"nextAttemptAt,omitempty"`
}

// ListView is a page of jobs in Azure's list shape.
type ListView struct {
	Value    []JobView `json:"value"`
	NextLink string    `json:"nextLink,omitempty"`
}

// redactCallback is how answers show a callback URL: its origin, with the path and
// every query value replaced. Receivers keep their credential in the query (sig=, code=,
// token=...) or in the path (Slack, Teams and Discord webhook URLs), and answers reach
// every caller who may read the job: for an Event Grid job, any function-key caller.
func redactCallback(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return redact.Placeholder
	}
	c := url.URL{Scheme: u.Scheme, Host: u.Host}
	if u.Path != "" && u.Path != "/" {
		c.Path = "/" + redact.Placeholder
	}
	if u.RawQuery != "" {
		q := u.Query()
		for name := range q {
			q[name] = []string{redact.Placeholder}
		}
		c.RawQuery = q.Encode()
	}
	return c.String()
}

func newJobView(j *copyjob.Job, prefix string) JobView {
	v := JobView{
		ID: j.ID, Origin: j.Origin, EventID: j.EventID,
		Source: SourceView{URL: redact.URL(j.Source.URL), Kind: j.Source.Kind, SASExpiresAt: j.Source.SASExpiresAt, SASKind: j.Source.SASKind},
		Destination: DestinationView{Account: j.Destination.Account, Container: j.Destination.Container,
			Blob: j.Destination.Blob, URL: redact.URL(j.Destination.URL)},
		Options:             optionsView(j.Options),
		CopyID:              j.CopyID,
		Status:              j.Status,
		StatusDescription:   redact.Text(j.StatusDescription),
		Progress:            ProgressView{BytesCopied: j.Progress.BytesCopied, BytesTotal: j.Progress.BytesTotal},
		Percent:             j.Progress.Percent(),
		DestinationSnapshot: j.DestinationSnapshot,
		RestoredFrom:        j.RestoredFrom,
		CreatedAt:           j.CreatedAt, UpdatedAt: j.UpdatedAt,
		StartedAt: j.StartedAt, CompletedAt: j.CompletedAt,
	}
	if r := j.Source.Ref; r != nil {
		v.Source.Blob = &BlobView{Account: r.Account, Container: r.Container, Blob: r.Blob, Snapshot: r.Snapshot, VersionID: r.VersionID}
	}
	if j.Lease != nil {
		v.Lease = &LeaseView{State: j.Lease.State, ReleaseRefusals: j.Lease.Refusals, NextReleaseAt: j.Lease.NextAttemptAt}
	}
	if cb := j.Callback; cb != nil {
		v.Callback = &CallbackView{URL: redactCallback(cb.URL), DeliveryID: cb.DeliveryID, Attempts: cb.Attempts,
			DeliveredAt: cb.DeliveredAt, LastError: redact.Text(cb.LastError), GaveUp: cb.GaveUp, NextAttemptAt: cb.NextAttemptAt}
	}
	if j.Status == copyjob.StatusSuccess && j.Progress.BytesTotal == 0 {
		v.Percent = 100
	}
	if j.ID != "" {
		v.StatusQueryGetURI = prefix + "/copies/" + j.ID
		if j.Status == copyjob.StatusPending {
			v.AbortPostURI = prefix + "/copies/" + j.ID + "/abort"
		}
		if j.Status.Retryable() {
			v.RetryPostURI = prefix + "/copies/" + j.ID + "/retry"
		}
	}
	for _, o := range j.History {
		v.History = append(v.History, OutcomeView{Status: o.Status, StatusDescription: redact.Text(o.StatusDescription),
			CopyID: o.CopyID, StartedAt: o.StartedAt, CompletedAt: o.CompletedAt})
	}
	return v
}

func optionsView(o copyjob.Options) OptionsView {
	v := OptionsView{Metadata: o.Metadata, Tags: o.Tags, Tier: o.Tier, Overwrite: o.Overwrite,
		RequiresSync: o.RequiresSync, LeaseSource: o.LeaseSource, SnapshotDestination: o.SnapshotDestination,
		CreateContainer: !o.ContainerMustExist}
	if o.SASLifetime != 0 {
		v.SASLifetime = time.Duration(o.SASLifetime).String()
	}
	return v
}

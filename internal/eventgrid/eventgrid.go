// Package eventgrid holds the shapes of Azure Event Grid deliveries to a
// webhook and the rules for reading them: Event Grid schema batches,
// CloudEvents 1.0 (structured single events and batches), the subscription
// validation handshake, the CloudEvents abuse-protection handshake, and the
// data of Microsoft.Storage.BlobCreated.
//
// The package is plain data plus parsing. It has no HTTP server and no storage
// client: the HTTP layer calls [IsDelivery] and [ParseDelivery] with the
// request's headers and body, answers a [Delivery] whose Validation is set with
// a [ValidationResponse], answers OPTIONS with [AbuseProtectionResponse], and
// hands each BlobCreated event to [ParseBlobCreated].
//
// The raw shapes ([EventGridEvent], [CloudEvent], [StorageBlobCreatedData])
// are tested against sample payloads copied from Azure's documentation; see
// testdata/README.md.
package eventgrid

import (
	"encoding/json"
	"time"
)

// Schema names the wire schema a delivery used. The values are the names
// Azure gives the delivery schemas of an event subscription.
type Schema string

const (
	// SchemaEventGrid is the Event Grid event schema: a JSON array of events
	// with id, topic, subject, eventType, eventTime, data, dataVersion.
	SchemaEventGrid Schema = "EventGridSchema"
	// SchemaCloudEvents is the CloudEvents 1.0 JSON format, structured mode.
	SchemaCloudEvents Schema = "CloudEventSchemaV1_0"
)

// Event types this project meets.
const (
	// TypeSubscriptionValidation is the type of the single event Event Grid
	// sends (Event Grid schema only) when a subscription is created or updated.
	TypeSubscriptionValidation = "Microsoft.EventGrid.SubscriptionValidationEvent"
	// TypeSubscriptionDeletion is sent when the event subscription is deleted
	// (with header aeg-event-type: Unsubscribe).
	TypeSubscriptionDeletion = "Microsoft.EventGrid.SubscriptionDeletedEvent"
	// TypeBlobCreated is raised by PutBlob, PutBlockList, CopyBlob,
	// FlushWithClose, SftpCommit... once the blob is committed.
	TypeBlobCreated = "Microsoft.Storage.BlobCreated"
	// TypeBlobRenamed is raised by RenameFile (Data Lake) and SftpRename on
	// accounts with a hierarchical namespace; a file committed by renaming it
	// raises no BlobCreated.
	TypeBlobRenamed = "Microsoft.Storage.BlobRenamed"
	// TypeBlobDeleted is raised by DeleteBlob and DeleteFile.
	TypeBlobDeleted = "Microsoft.Storage.BlobDeleted"
)

// HTTP header names of Event Grid webhook deliveries and of the CloudEvents
// webhook abuse-protection handshake.
const (
	// HeaderEventType carries SubscriptionValidation, Notification or
	// Unsubscribe on every Event Grid delivery.
	HeaderEventType = "aeg-event-type"
	// HeaderSubscriptionName names the event subscription that delivers.
	HeaderSubscriptionName = "aeg-subscription-name"

	// HeaderRequestOrigin is sent by the OPTIONS validation request (and on
	// each later delivery) with the DNS name of the sender, for Event Grid
	// "eventgrid.azure.net".
	HeaderRequestOrigin = "WebHook-Request-Origin"
	// HeaderRequestCallback may offer a URL to grant permission later with a
	// GET or POST.
	HeaderRequestCallback = "WebHook-Request-Callback"
	// HeaderRequestRate may ask for a rate in requests per minute.
	HeaderRequestRate = "WebHook-Request-Rate"
	// HeaderAllowedOrigin grants permission in the OPTIONS response: the
	// requested origin, or "*".
	HeaderAllowedOrigin = "WebHook-Allowed-Origin"
	// HeaderAllowedRate grants a rate in the OPTIONS response: "*" or a
	// positive integer (requests per minute).
	HeaderAllowedRate = "WebHook-Allowed-Rate"
)

// Values of [HeaderEventType].
const (
	EventTypeSubscriptionValidation = "SubscriptionValidation"
	EventTypeNotification           = "Notification"
	EventTypeUnsubscribe            = "Unsubscribe"
)

// Content types of CloudEvents structured deliveries.
const (
	ContentTypeCloudEvents      = "application/cloudevents+json"
	ContentTypeCloudEventsBatch = "application/cloudevents-batch+json"
)

// MaxEvents is the most events ParseDelivery accepts in one delivery; a larger
// batch is refused with a *DeliveryError (Index -1). Event Grid's own limit
// on max events per batch is 5000, so a real delivery never exceeds it; the
// cap bounds the work one request can cause. The HTTP layer should also cap
// the body size before calling ParseDelivery.
const MaxEvents = 5000

// Event is one delivered event, whatever the schema it came in.
type Event struct {
	ID   string
	Type string
	// Source is the Event Grid topic or the CloudEvents source: for storage
	// events, the storage account's resource ID.
	Source  string
	Subject string
	// Time is eventTime (Event Grid) or time (CloudEvents, optional: zero
	// when absent).
	Time time.Time
	// Data is the event's data as JSON, nil when a CloudEvent has none.
	Data   json.RawMessage
	Schema Schema
}

// EventGridEvent is one element of an Event Grid schema delivery, as on the
// wire.
type EventGridEvent struct {
	ID              string          `json:"id"`
	Topic           string          `json:"topic"`
	Subject         string          `json:"subject"`
	EventType       string          `json:"eventType"`
	EventTime       string          `json:"eventTime"`
	Data            json.RawMessage `json:"data"`
	DataVersion     string          `json:"dataVersion"`
	MetadataVersion string          `json:"metadataVersion"`
}

// CloudEvent is a CloudEvents 1.0 event in the JSON format, as on the wire.
// Extension attributes are not kept.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            string          `json:"time,omitempty"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	DataSchema      string          `json:"dataschema,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
	// DataBase64 is binary data, base64 encoded. ParseDelivery decodes it
	// into Event.Data when the decoded bytes are JSON and refuses it otherwise.
	DataBase64 string `json:"data_base64,omitempty"`
}

// SubscriptionValidationData is the data of a
// Microsoft.EventGrid.SubscriptionValidationEvent.
type SubscriptionValidationData struct {
	// ValidationCode is echoed in a ValidationResponse for the synchronous
	// handshake.
	ValidationCode string `json:"validationCode"`
	// ValidationURL may be fetched with a GET within 5 minutes for the
	// manual handshake (port 553).
	ValidationURL string `json:"validationUrl,omitempty"`
}

// ValidationResponse is the body of the 200 answer to a subscription
// validation delivery.
type ValidationResponse struct {
	ValidationResponse string `json:"validationResponse"`
}

package copysim

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// OpListBlobs is List Blobs (GET ?restype=container&comp=list), flat listing only.
const OpListBlobs = "ListBlobs"

// The List Blobs answer, as
// https://learn.microsoft.com/rest/api/storageservices/list-blobs documents it: the
// copy properties only with include=copy, metadata only with include=metadata; the
// marker is opaque to clients (here: the last name returned).
type listResult struct {
	XMLName         xml.Name    `xml:"EnumerationResults"`
	ServiceEndpoint string      `xml:"ServiceEndpoint,attr"`
	ContainerName   string      `xml:"ContainerName,attr"`
	Prefix          string      `xml:"Prefix,omitempty"`
	Marker          string      `xml:"Marker,omitempty"`
	MaxResults      int         `xml:"MaxResults,omitempty"`
	Blobs           []listEntry `xml:"Blobs>Blob"`
	NextMarker      string      `xml:"NextMarker"`
}

type listEntry struct {
	Name       string         `xml:"Name"`
	Properties listProperties `xml:"Properties"`
	Metadata   *listMetadata  `xml:"Metadata,omitempty"`
}

type listProperties struct {
	CreationTime          string `xml:"Creation-Time"`
	LastModified          string `xml:"Last-Modified"`
	Etag                  string `xml:"Etag"`
	ContentLength         int64  `xml:"Content-Length"`
	ContentType           string `xml:"Content-Type"`
	BlobType              string `xml:"BlobType"`
	AccessTier            string `xml:"AccessTier,omitempty"`
	LeaseStatus           string `xml:"LeaseStatus"`
	LeaseState            string `xml:"LeaseState"`
	CopyID                string `xml:"CopyId,omitempty"`
	CopyStatus            string `xml:"CopyStatus,omitempty"`
	CopySource            string `xml:"CopySource,omitempty"`
	CopyProgress          string `xml:"CopyProgress,omitempty"`
	CopyCompletionTime    string `xml:"CopyCompletionTime,omitempty"`
	CopyStatusDescription string `xml:"CopyStatusDescription,omitempty"`
}

type listMetadata struct {
	Items []listMetaItem
}

type listMetaItem struct {
	XMLName xml.Name
	Value   string `xml:",chardata"`
}

func (m *listMetadata) MarshalXML(e *xml.Encoder, start xml.StartElement) error {
	if err := e.EncodeToken(start); err != nil {
		return err
	}
	for _, it := range m.Items {
		if err := e.EncodeElement(it.Value, xml.StartElement{Name: it.XMLName}); err != nil {
			return err
		}
	}
	return e.EncodeToken(start.End())
}

// listBlobs serves a flat List Blobs of the base blobs (no snapshots) of a container.
func (s *Server) listBlobs(x *exchange, c *containerEntry) {
	q := x.r.URL.Query()
	if q.Get("delimiter") != "" {
		x.fail(http.StatusNotImplemented, "NotImplemented", "hierarchical listings (delimiter) are not simulated")
		return
	}
	prefix, marker := q.Get("prefix"), q.Get("marker")
	max := 5000
	if v := q.Get("maxresults"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			x.fail(http.StatusBadRequest, "InvalidQueryParameterValue", "maxresults")
			return
		}
		max = min(n, 5000)
	}
	include := map[string]bool{}
	for _, v := range strings.Split(q.Get("include"), ",") {
		include[strings.TrimSpace(v)] = true
	}
	names := make([]string, 0, len(c.blobs))
	for name := range c.blobs {
		if strings.HasPrefix(name, prefix) && name > marker {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	res := listResult{ServiceEndpoint: "http://" + x.r.Host + "/" + x.account + "/", ContainerName: x.container,
		Prefix: prefix, Marker: marker, MaxResults: max}
	if len(names) > max {
		names = names[:max]
		res.NextMarker = names[max-1]
	}
	for _, name := range names {
		b := c.blobs[name]
		l := b.lease.view(x.now)
		p := listProperties{CreationTime: b.created.Format(http.TimeFormat), LastModified: b.lastModified.Format(http.TimeFormat),
			Etag: b.etag, ContentLength: int64(len(b.data)), ContentType: b.contentType, BlobType: "BlockBlob", AccessTier: b.tier,
			LeaseStatus: l.Status, LeaseState: l.State}
		if cp := b.copy; cp != nil && include["copy"] {
			p.CopyID, p.CopyStatus, p.CopySource = cp.ID, cp.Status, cp.sourceURL.String()
			p.CopyProgress = fmt.Sprintf("%d/%d", cp.Copied, cp.Total)
			if !cp.CompletedAt.IsZero() {
				p.CopyCompletionTime = cp.CompletedAt.Format(http.TimeFormat)
			}
			p.CopyStatusDescription = cp.Description
		}
		e := listEntry{Name: name, Properties: p}
		if include["metadata"] {
			e.Metadata = &listMetadata{}
			for k, v := range b.metadata {
				e.Metadata.Items = append(e.Metadata.Items, listMetaItem{XMLName: xml.Name{Local: k}, Value: v})
			}
		}
		res.Blobs = append(res.Blobs, e)
	}
	body, err := xml.Marshal(res)
	if err != nil {
		x.fail(http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	x.header.Set("Content-Type", "application/xml")
	x.body = append([]byte(xml.Header), body...)
}

package copyjobtest

import (
	"sort"
	"strings"
)

// Listed is one blob of a List result: its name and what the fake holds about it, copy
// properties included (as List Blobs with include=copy answers them).
type Listed struct {
	Name string
	BlobInfo
}

// List lists the base blobs (no snapshots) of a container whose names begin with prefix
// and sort after marker, at most max of them (every one when max <= 0), ordered by name
// like List Blobs. next is the last name returned when more remain. OpListBlobs faults apply.
func (b *Blobs) List(account, container, prefix, marker string, max int) (blobs []Listed, next string, err error) {
	if err := b.enter(OpListBlobs); err != nil {
		return nil, "", err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for ref, bl := range b.blobs {
		if ref.Account != account || ref.Container != container || ref.Snapshot != "" || ref.VersionID != "" ||
			!strings.HasPrefix(ref.Blob, prefix) || ref.Blob <= marker {
			continue
		}
		info := bl.info()
		info.Copy.LastModified = info.LastModified
		blobs = append(blobs, Listed{Name: ref.Blob, BlobInfo: info})
	}
	sort.Slice(blobs, func(i, j int) bool { return blobs[i].Name < blobs[j].Name })
	if max > 0 && len(blobs) > max {
		blobs = blobs[:max]
		next = blobs[max-1].Name
	}
	return blobs, next, nil
}

// OpListBlobs is Blobs.List (named apart from Records.List).
const OpListBlobs = "ListBlobs"

package azstorage

import "time"

// SetNow sets the adapter's clock (the SAS it signs and the age of its cached keys).
func (b *Blobs) SetNow(now func() time.Time) { b.now = now }

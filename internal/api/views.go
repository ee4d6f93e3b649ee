package api

import (
	"github.com/blobcopy/blobcopy/internal/copyjob"
)

// JobView is a job as the API shows it: the record plus links and the percentage.
type JobView struct {
	*copyjob.Job
	Percent float64 `json:"percent"`
	// Links follow the async request-reply pattern (Durable Functions names).
	StatusQueryGetURI string `json:"statusQueryGetUri"`
	AbortPostURI      string `json:"abortPostUri,omitempty"`
}

func (s *Server) view(j *copyjob.Job) JobView {
	v := JobView{Job: j, Percent: j.Progress.Percent()}
	if j.ID != "" {
		v.StatusQueryGetURI = s.prefix + "/copies/" + j.ID
		if j.Status == copyjob.StatusPending {
			v.AbortPostURI = s.prefix + "/copies/" + j.ID + "/abort"
		}
	}
	if j.Status == copyjob.StatusSuccess && j.Progress.BytesTotal == 0 {
		v.Percent = 100
	}
	return v
}

// ListView is a page of jobs in Azure's list shape.
type ListView struct {
	Value    []JobView `json:"value"`
	NextLink string    `json:"nextLink,omitempty"`
}

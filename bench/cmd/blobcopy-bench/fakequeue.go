package main

import (
	"container/heap"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
)

// memQueue is an in-memory Azure Queue service (the REST subset azqueue uses:
// create/delete/clear queue, properties, put, get, update and delete message) whose
// message operations cost O(log n): messages sit in a heap ordered by the time they
// become visible (then by insertion), so a dequeue never scans hidden messages. Azurite 3.37's queue slows down linearly with the number
// of stored messages (Update Message: ~480/s with 200 messages, ~18/s with 4,000),
// so at 10,000 jobs a tick on Azurite measures Azurite; this server takes the queue
// out of the way so the tick measures the app against the simulator. Authorization
// is not checked.
type memQueue struct {
	srv    *httptest.Server
	mu     sync.Mutex
	queues map[string]*memQ // "account/queue"
	seq    uint64
}

type memQ struct {
	msgs map[string]*memMsg
	// byVisible orders the messages by when they become visible, then by insertion.
	byVisible msgHeap
}

type memMsg struct {
	id, text, pop     string
	inserted, visible time.Time
	dequeues          int64
	seq               uint64 // insertion order
	index             int    // position in byVisible
}

// msgHeap implements heap.Interface.
type msgHeap []*memMsg

func (h msgHeap) Len() int { return len(h) }
func (h msgHeap) Less(i, j int) bool {
	if !h[i].visible.Equal(h[j].visible) {
		return h[i].visible.Before(h[j].visible)
	}
	return h[i].seq < h[j].seq
}
func (h msgHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *msgHeap) Push(x any) {
	m := x.(*memMsg)
	m.index = len(*h)
	*h = append(*h, m)
}
func (h *msgHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return m
}

func newMemQueue() *memQueue {
	m := &memQueue{queues: map[string]*memQ{}}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	return m
}

func (m *memQueue) Close()                         { m.srv.Close() }
func (m *memQueue) Endpoint(account string) string { return m.srv.URL + "/" + account }

// makeVisible makes every message of a queue visible now. The bench calls it between
// two ticks instead of waiting for the visibility timeouts the tick set; the app's
// requests are the same either way.
func (m *memQueue) makeVisible(account, queue string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	q := m.queues[account+"/"+queue]
	if q == nil {
		return 0
	}
	now := time.Now().UTC()
	for _, msg := range q.msgs {
		msg.visible = now
	}
	heap.Init(&q.byVisible)
	return len(q.msgs)
}

const rfc1123 = "Mon, 02 Jan 2006 15:04:05 GMT"

var neverExpires = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

func (m *memQueue) serve(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	w.Header().Set("x-ms-request-id", uuid.NewString())
	w.Header().Set("x-ms-version", "2018-03-28")
	now := time.Now().UTC()
	w.Header().Set("Date", now.Format(rfc1123))
	if len(segs) < 2 {
		m.fail(w, http.StatusNotImplemented, "NotImplemented")
		return
	}
	key := segs[0] + "/" + segs[1]
	q := r.URL.Query()
	m.mu.Lock()
	defer m.mu.Unlock()
	queue := m.queues[key]
	if len(segs) == 2 {
		switch {
		case r.Method == http.MethodPut && q.Get("comp") == "":
			if queue != nil {
				w.WriteHeader(http.StatusNoContent)
				return
			}
			m.queues[key] = &memQ{msgs: map[string]*memMsg{}}
			w.WriteHeader(http.StatusCreated)
		case r.Method == http.MethodDelete:
			delete(m.queues, key)
			w.WriteHeader(http.StatusNoContent)
		case q.Get("comp") == "metadata" && queue != nil:
			w.Header().Set("x-ms-approximate-messages-count", strconv.Itoa(len(queue.msgs)))
			w.WriteHeader(http.StatusOK)
		default:
			m.fail(w, http.StatusNotFound, "QueueNotFound")
		}
		return
	}
	if queue == nil {
		m.fail(w, http.StatusNotFound, "QueueNotFound")
		return
	}
	if len(segs) == 3 { // .../messages
		switch r.Method {
		case http.MethodPost:
			text, ok := messageText(r)
			if !ok {
				m.fail(w, http.StatusBadRequest, "InvalidXmlDocument")
				return
			}
			m.seq++
			msg := &memMsg{id: uuid.NewString(), text: text, inserted: now, visible: now.Add(secondsParam(q, "visibilitytimeout", 0)), seq: m.seq}
			msg.pop = m.popReceipt()
			queue.msgs[msg.id] = msg
			heap.Push(&queue.byVisible, msg)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><QueueMessagesList><QueueMessage><MessageId>%s</MessageId><InsertionTime>%s</InsertionTime><ExpirationTime>%s</ExpirationTime><PopReceipt>%s</PopReceipt><TimeNextVisible>%s</TimeNextVisible></QueueMessage></QueueMessagesList>`,
				msg.id, msg.inserted.Format(rfc1123), neverExpires.Format(rfc1123), msg.pop, msg.visible.Format(rfc1123))
		case http.MethodGet:
			n, _ := strconv.Atoi(q.Get("numofmessages"))
			n = min(max(n, 1), 32)
			vis := secondsParam(q, "visibilitytimeout", 30*time.Second)
			var b strings.Builder
			b.WriteString(`<?xml version="1.0" encoding="utf-8"?><QueueMessagesList>`)
			// Pop the visible messages first, then push them back hidden: with a zero
			// visibility a message must still not come out twice in one answer.
			var got []*memMsg
			for len(got) < n && queue.byVisible.Len() > 0 && !queue.byVisible[0].visible.After(now) {
				got = append(got, heap.Pop(&queue.byVisible).(*memMsg))
			}
			for _, msg := range got {
				msg.dequeues++
				msg.visible = now.Add(vis)
				msg.pop = m.popReceipt()
				heap.Push(&queue.byVisible, msg)
				fmt.Fprintf(&b, `<QueueMessage><MessageId>%s</MessageId><InsertionTime>%s</InsertionTime><ExpirationTime>%s</ExpirationTime><PopReceipt>%s</PopReceipt><TimeNextVisible>%s</TimeNextVisible><DequeueCount>%d</DequeueCount><MessageText>%s</MessageText></QueueMessage>`,
					msg.id, msg.inserted.Format(rfc1123), neverExpires.Format(rfc1123), msg.pop, msg.visible.Format(rfc1123), msg.dequeues, xmlText(msg.text))
			}
			b.WriteString(`</QueueMessagesList>`)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusOK)
			io.WriteString(w, b.String())
		case http.MethodDelete:
			queue.msgs, queue.byVisible = map[string]*memMsg{}, nil
			w.WriteHeader(http.StatusNoContent)
		default:
			m.fail(w, http.StatusNotImplemented, "NotImplemented")
		}
		return
	}
	msg := queue.msgs[segs[3]]
	if msg == nil {
		m.fail(w, http.StatusNotFound, "MessageNotFound")
		return
	}
	if q.Get("popreceipt") != msg.pop {
		m.fail(w, http.StatusBadRequest, "PopReceiptMismatch")
		return
	}
	switch r.Method {
	case http.MethodPut:
		if text, ok := messageText(r); ok {
			msg.text = text
		}
		msg.visible = now.Add(secondsParam(q, "visibilitytimeout", 0))
		heap.Fix(&queue.byVisible, msg.index)
		msg.pop = m.popReceipt()
		w.Header().Set("x-ms-popreceipt", msg.pop)
		w.Header().Set("x-ms-time-next-visible", msg.visible.Format(rfc1123))
		w.WriteHeader(http.StatusNoContent)
	case http.MethodDelete:
		heap.Remove(&queue.byVisible, msg.index)
		delete(queue.msgs, msg.id)
		w.WriteHeader(http.StatusNoContent)
	default:
		m.fail(w, http.StatusNotImplemented, "NotImplemented")
	}
}

func (m *memQueue) popReceipt() string {
	m.seq++
	return "pop" + strconv.FormatUint(m.seq, 10)
}

func (m *memQueue) fail(w http.ResponseWriter, status int, code string) {
	w.Header().Set("x-ms-error-code", code)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="utf-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, code)
}

func secondsParam(q map[string][]string, name string, def time.Duration) time.Duration {
	v := ""
	if s := q[name]; len(s) > 0 {
		v = s[0]
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return def
	}
	return time.Duration(n) * time.Second
}

func messageText(r *http.Request) (string, bool) {
	var body struct {
		MessageText string `xml:"MessageText"`
	}
	if err := xml.NewDecoder(r.Body).Decode(&body); err != nil {
		return "", false
	}
	return body.MessageText, true
}

func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

package events

import (
	"encoding/json"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/circlegate/circlegate/store"
)

// Message is one committed event on its way to subscribers. It is shared by every
// subscriber it reaches, so it is never modified after it is made; its encodings are
// made on first use and cached.
type Message struct {
	Tenant string
	Event  store.Event

	jsonOnce sync.Once
	json     []byte
	enc      [maxEncodings]lazyBytes
}

// NewMessage returns the message of one event of tenant.
func NewMessage(tenant string, ev store.Event) *Message {
	return &Message{Tenant: tenant, Event: ev}
}

// ContextID returns the context the message belongs to.
func (m *Message) ContextID() string { return m.Event.ContextID }

// Seq returns the event's per-context seq.
func (m *Message) Seq() uint64 { return m.Event.Seq }

// JSON returns the event as subscribers see it:
//
//	{"contextId","seq","txId","txSeq","kind","data"?,"rootHash"?,"time"}
//
// data is the event's payload when it is JSON, else the payload as a JSON string;
// rootHash is set on StateMutation events. time is Unix milliseconds.
func (m *Message) JSON() []byte {
	m.jsonOnce.Do(func() { m.json = encodeEvent(m.Event) })
	return m.json
}

// wireEvent is the JSON shape of an event.
type wireEvent struct {
	ContextID string          `json:"contextId"`
	Seq       uint64          `json:"seq"`
	TxID      string          `json:"txId,omitempty"`
	TxSeq     uint64          `json:"txSeq"`
	Kind      string          `json:"kind"`
	Data      json.RawMessage `json:"data,omitempty"`
	RootHash  string          `json:"rootHash,omitempty"`
	Time      int64           `json:"time"`
}

func encodeEvent(ev store.Event) []byte {
	w := wireEvent{
		ContextID: ev.ContextID, Seq: ev.Seq, TxID: ev.TxID, TxSeq: ev.TxSeq,
		Kind: ev.Kind, RootHash: ev.RootHash, Time: ev.Time.UnixMilli(),
	}
	if len(ev.Data) > 0 {
		w.Data = json.RawMessage(ev.Data)
		if !json.Valid(w.Data) {
			w.Data, _ = json.Marshal(string(ev.Data))
		}
	}
	b, err := json.Marshal(w)
	if err != nil { // only Data could fail, and it is valid JSON by now
		panic("events: encode event: " + err.Error())
	}
	return b
}

// ID returns the event's resume id, "<contextId>:<seq>" (SSE's id field).
func (m *Message) ID() string {
	return m.Event.ContextID + ":" + strconv.FormatUint(m.Event.Seq, 10)
}

// An Encoding is one transport's wire form of a message (a WebSocket frame, an SSE
// record). Each message makes it at most once, whatever the number of subscribers.
type Encoding struct {
	slot   int
	encode func(*Message) []byte
}

// maxEncodings is how many encodings a process may define.
const maxEncodings = 4

var encodings atomic.Int32

// NewEncoding defines an encoding; call it from a package-level var. It panics past
// maxEncodings.
func NewEncoding(encode func(*Message) []byte) *Encoding {
	slot := int(encodings.Add(1)) - 1
	if slot >= maxEncodings {
		panic("events: too many encodings")
	}
	return &Encoding{slot: slot, encode: encode}
}

// Encode returns the message in encoding e, made on the first call.
func (m *Message) Encode(e *Encoding) []byte {
	l := &m.enc[e.slot]
	l.once.Do(func() { l.b = e.encode(m) })
	return l.b
}

type lazyBytes struct {
	once sync.Once
	b    []byte
}

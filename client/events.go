package client

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// Event is one context event, the params of an "event" notification.
type Event struct {
	ContextID string          `json:"contextId"`
	Seq       uint64          `json:"seq"`
	TxID      string          `json:"txId,omitempty"`
	TxSeq     uint64          `json:"txSeq"`
	Kind      string          `json:"kind"`
	Data      json.RawMessage `json:"data,omitempty"`
	RootHash  string          `json:"rootHash,omitempty"`
	Time      int64           `json:"time"` // Unix milliseconds
}

// SubscribeResult is the result of subscribe.
type SubscribeResult struct {
	Subscribed []string        `json:"subscribed"`
	Recovered  map[string]bool `json:"recovered"`
	Refused    []struct {
		ContextID string `json:"contextId"`
		Error     *Error `json:"error"`
	} `json:"refused,omitempty"`
}

// Subscribe subscribes the connection to contexts; since resumes a context after the
// seq of the last event the caller has. Events arrive on Notifications as method
// "event"; ParseEvent decodes them.
func (c *Client) Subscribe(ctx context.Context, contextIDs []string, since map[string]uint64) (SubscribeResult, error) {
	params := map[string]any{"contextIds": contextIDs}
	if len(since) > 0 {
		params["since"] = since
	}
	var res SubscribeResult
	err := c.Call(ctx, "subscribe", params, &res)
	return res, err
}

// Unsubscribe ends subscriptions and returns the contexts that were subscribed.
func (c *Client) Unsubscribe(ctx context.Context, contextIDs []string) ([]string, error) {
	var res struct {
		Unsubscribed []string `json:"unsubscribed"`
	}
	err := c.Call(ctx, "unsubscribe", map[string]any{"contextIds": contextIDs}, &res)
	return res.Unsubscribed, err
}

// ParseEvent decodes an "event" notification; ok is false for other notifications.
func ParseEvent(n Notification) (ev Event, ok bool, err error) {
	if n.Method != "event" {
		return Event{}, false, nil
	}
	err = json.Unmarshal(n.Params, &ev)
	return ev, err == nil, err
}

// WatchConfig configures Watch.
type WatchConfig struct {
	URL        string
	Key        *secp256k1.PrivateKey
	ContextIDs []string
	// Since resumes contexts after these seqs on the first connection.
	Since map[string]uint64
	// OnSubscribed, if set, sees each subscribe result: after every (re)connection.
	// A context with Recovered false missed events history no longer holds; the
	// caller should refetch its state.
	OnSubscribed func(SubscribeResult)
	// Options are passed to Dial.
	Options []Option
	// MaxBackoff caps the wait between reconnections. Zero means 5s.
	MaxBackoff time.Duration
}

// Watcher keeps subscriptions alive across dropped connections: it redials,
// authenticates and resubscribes after the last seq it delivered of each context, so
// the events it delivers have no gap and no duplicate.
type Watcher struct {
	cfg    WatchConfig
	events chan Event
	done   chan struct{}
	cancel context.CancelFunc

	mu   sync.Mutex
	last map[string]uint64
	err  error
}

// Watch starts watching; stop it by canceling ctx. Events arrive in order per
// context on Events, which is closed when the watcher stops.
func Watch(ctx context.Context, cfg WatchConfig) *Watcher {
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &Watcher{cfg: cfg, events: make(chan Event, 256), done: make(chan struct{}), cancel: cancel, last: map[string]uint64{}}
	for id, seq := range cfg.Since {
		w.last[id] = seq
	}
	go w.run(ctx)
	return w
}

// Events delivers the watched contexts' events.
func (w *Watcher) Events() <-chan Event { return w.events }

// Err returns the error that stopped the watcher for good (an authentication or
// subscription refusal), or nil.
func (w *Watcher) Err() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}

// Stop stops the watcher and waits for it.
func (w *Watcher) Stop() {
	w.cancel()
	<-w.done
}

func (w *Watcher) run(ctx context.Context) {
	defer close(w.done)
	defer close(w.events)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		connected, err := w.session(ctx)
		var rpcErr *Error
		if errors.As(err, &rpcErr) { // refused by the server: retrying will not help
			w.mu.Lock()
			w.err = err
			w.mu.Unlock()
			return
		}
		if connected {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, w.cfg.MaxBackoff)
	}
}

// session runs one connection until it drops; connected tells whether it got as far
// as subscribing.
func (w *Watcher) session(ctx context.Context) (connected bool, err error) {
	c, err := Dial(ctx, w.cfg.URL, w.cfg.Options...)
	if err != nil {
		return false, err
	}
	defer c.Close()
	if _, err := c.Authenticate(ctx, w.cfg.Key); err != nil {
		return false, err
	}
	w.mu.Lock()
	since := make(map[string]uint64, len(w.last))
	for id, seq := range w.last {
		since[id] = seq
	}
	w.mu.Unlock()
	res, err := c.Subscribe(ctx, w.cfg.ContextIDs, since)
	if err != nil {
		return false, err
	}
	if w.cfg.OnSubscribed != nil {
		w.cfg.OnSubscribed(res)
	}
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case n, ok := <-c.Notifications():
			if !ok {
				return true, c.Err()
			}
			ev, isEvent, err := ParseEvent(n)
			if err != nil || !isEvent {
				continue
			}
			w.mu.Lock()
			dup := ev.Seq <= w.last[ev.ContextID] && w.hasLast(ev.ContextID)
			if !dup {
				w.last[ev.ContextID] = ev.Seq
			}
			w.mu.Unlock()
			if dup {
				continue
			}
			select {
			case w.events <- ev:
			case <-ctx.Done():
				return true, nil
			}
		case <-c.Done():
			return true, c.Err()
		}
	}
}

// hasLast reports whether a seq was recorded for id; w.mu is held.
func (w *Watcher) hasLast(id string) bool {
	_, ok := w.last[id]
	return ok
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/circlegate/circlegate/client"
	"github.com/circlegate/circlegate/tenant"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/gorilla/websocket"
)

// The whoami load: 100 sessions sending e.whoamiRate requests per second in all
// (10,000 by default, 100 per session). They fit in one worker, and one process takes
// less CPU from the gateway than two.
const (
	whoamiSessions = 100
	whoamiWorkers  = 1
	// callTimeout is how long after the last send the replies may take.
	callTimeout = 5 * time.Second
)

// runWhoami offers a paced (open-loop) whoami load for e.duration and reports the
// latency percentiles, each measured from the request's scheduled send time.
func runWhoami(ctx context.Context, e *env) (result, error) {
	gw, err := startGateway(ctx, e, gatewayConfig{MaxConnections: 1000})
	if err != nil {
		return result{}, err
	}
	defer gw.stop()
	return runPaced(ctx, e, gw, job{Scenario: "whoami", URL: gw.url()})
}

// runPaced runs base (whoami or query) as a paced open-loop load of e.whoamiRate
// requests per second over whoamiSessions sessions for e.duration, and reports the
// latency percentiles from the scheduled send times.
func runPaced(ctx context.Context, e *env, gw *gateway, base job) (result, error) {
	base.Sessions, base.Duration, base.Rate = whoamiSessions, e.duration, e.whoamiRate/whoamiSessions
	ws, err := startWorkers(e, splitJob(base, whoamiWorkers))
	if err != nil {
		return result{}, err
	}
	defer ws.stop()
	ready, err := ws.collect(ctx, "ready", time.Minute)
	if err != nil {
		return result{}, err
	}
	if sum := total(ready); sum.OK != whoamiSessions {
		return result{}, fmt.Errorf("%d of %d sessions opened, first error: %s", sum.OK, whoamiSessions, sum.FirstErr)
	}

	sum, use, err := runLoad(ctx, e, gw, ws, ready, 300*time.Millisecond)
	if err != nil {
		return result{}, err
	}
	late := make([]int64, len(sum.Latency)) // how late the load generator sent
	for i := range late {
		late[i] = sum.Latency[i] - sum.Service[i]
	}
	for _, s := range [][]int64{sum.Latency, sum.Service, late} {
		slices.Sort(s)
	}
	lat := func(q float64) string { return fmtNanos(quantile(sum.Latency, q)) }
	svc := func(q float64) string { return fmtNanos(quantile(sum.Service, q)) }
	wall := sum.Elapsed.Seconds()
	over := ""
	if len(base.Contexts) > 0 {
		over = fmt.Sprintf(" on %d contexts", len(base.Contexts))
	}
	return result{
		Figure: "p99 " + lat(0.99),
		Pass:   quantile(sum.Latency, 0.99) <= int64(time.Millisecond),
		Notes: fmt.Sprintf("offered %.0f req/s over %d sessions%s, achieved %.0f req/s, %d errors; from scheduled send: p50 %s, p99 %s, p99.9 %s, max %s; "+
			"from actual send: p50 %s, p99 %s, p99.9 %s; sends late by p99 %s, max %s; %s; %s (%s)",
			e.whoamiRate, whoamiSessions, over, float64(sum.OK)/wall, sum.Errors, lat(0.5), lat(0.99), lat(0.999), lat(1),
			svc(0.5), svc(0.99), svc(0.999), fmtNanos(quantile(late, 0.99)), fmtNanos(quantile(late, 1)),
			use.perOp(sum.OK), use.cores(wall), e.placement()),
	}, nil
}

// quantile returns the q-quantile of sorted (nearest rank), or 0 when it is empty.
func quantile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// fmtNanos formats a latency in µs below a millisecond and in ms above.
func fmtNanos(ns int64) string {
	if ns < int64(time.Millisecond) {
		return fmt.Sprintf("%dµs", ns/1000)
	}
	return fmt.Sprintf("%.2fms", float64(ns)/1e6)
}

// whoamiLoad is the worker side: Sessions authenticated sessions, each sending whoami
// Rate times a second on a fixed schedule, whether or not earlier replies came back.
// It drives the bare WebSocket rather than the client package: one sender for all
// sessions, one reader per session, and no goroutine, timer or map entry per request,
// so that the load generator takes as little CPU from the gateway as it can.
type whoamiLoad struct {
	job      job
	sessions []*whoamiSession
}

// whoamiSession is one session's connection and the times of its requests, indexed
// by request id - 1.
type whoamiSession struct {
	conn      *websocket.Conn
	scheduled []time.Time
	sent      []atomic.Int64 // unix nanoseconds
	latency   []int64        // from scheduled send to reply, per reply
	service   []int64        // from actual send to reply, per reply
	t         tally
	broken    bool // a send failed; only the sender uses it
}

func (l *whoamiLoad) prepare(ctx context.Context) report {
	conns, rep := openJobSessions(ctx, l.job)
	for _, conn := range conns {
		l.sessions = append(l.sessions, &whoamiSession{conn: conn})
	}
	return rep
}

// openJobSessions opens the job's authenticated raw sessions, stopping at the first
// failure, and returns them with the "ready" report.
func openJobSessions(ctx context.Context, j job) ([]*websocket.Conn, report) {
	keys, err := jobKeys(j)
	if err != nil {
		return nil, report{Phase: "ready", Errors: 1, FirstErr: err.Error()}
	}
	d := dialer(j.LocalIP)
	var t tally
	var conns []*websocket.Conn
	for _, key := range keys {
		conn, err := openRawSessionRetry(ctx, j.URL, d, key)
		t.add(err)
		if err != nil {
			break
		}
		conns = append(conns, conn)
	}
	return conns, t.report("ready")
}

// jobKeys returns one key per session: the job's key for all of them when it has one,
// else a key of their own each.
func jobKeys(j job) ([]*secp256k1.PrivateKey, error) {
	if j.Key == "" {
		return newKeys(j.Sessions)
	}
	key, err := client.ParsePrivateKey(j.Key)
	if err != nil {
		return nil, err
	}
	keys := make([]*secp256k1.PrivateKey, j.Sessions)
	for i := range keys {
		keys[i] = key
	}
	return keys, nil
}

// openRawSessionRetry is openRawSession tried up to three times: sessions sharing the
// owner's key, opened from several workers at once, may find its four outstanding
// nonces taken.
func openRawSessionRetry(ctx context.Context, url string, d *websocket.Dialer, key *secp256k1.PrivateKey) (*websocket.Conn, error) {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			if sleep(ctx, time.Duration(attempt)*100*time.Millisecond) != nil {
				break
			}
		}
		var conn *websocket.Conn
		if conn, err = openRawSession(ctx, url, d, key); err == nil {
			return conn, nil
		}
	}
	return nil, err
}

// openRawSession dials url and runs fetch_nonce, authenticate and whoami by hand,
// checking that whoami answers with key's public key.
func openRawSession(ctx context.Context, url string, d *websocket.Dialer, key *secp256k1.PrivateKey) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetReadDeadline(deadline)
	_ = conn.SetWriteDeadline(deadline)
	pub := tenant.PubKeyHex(key.PubKey())
	var auth client.AuthResult
	var n struct {
		Nonce string `json:"nonce"`
	}
	var id struct {
		PubKey string `json:"pubkey"`
	}
	err = rawCall(conn, "fetch_nonce", map[string]string{"pubkey": pub}, &n)
	if err == nil {
		sig := tenant.SignPersonal(key, []byte(n.Nonce))
		err = rawCall(conn, "authenticate", map[string]string{"pubkey": pub, "signature": sig, "nonce": n.Nonce}, &auth)
	}
	if err == nil && !auth.Authenticated {
		err = errors.New("authenticate returned authenticated=false")
	}
	if err == nil {
		err = rawCall(conn, "whoami", nil, &id)
	}
	if err == nil && id.PubKey != pub {
		err = fmt.Errorf("whoami returned pubkey %q, want %q", id.PubKey, pub)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// rawCall sends one request with id 0 and reads its reply into result.
func rawCall(conn *websocket.Conn, method string, params, result any) error {
	req := map[string]any{"jsonrpc": "2.0", "id": 0, "method": method, "params": params}
	if err := conn.WriteJSON(req); err != nil {
		return err
	}
	var resp struct {
		Result json.RawMessage `json:"result"`
		Error  *client.Error   `json:"error"`
	}
	if err := conn.ReadJSON(&resp); err != nil {
		return err
	}
	if resp.Error != nil {
		return resp.Error
	}
	return json.Unmarshal(resp.Result, result)
}

func (l *whoamiLoad) run(ctx context.Context, start time.Time) report {
	interval := time.Duration(float64(time.Second) / l.job.Rate)
	n := l.job.Sessions * l.job.Workers
	end := start.Add(l.job.Duration)
	var wg sync.WaitGroup
	for i, s := range l.sessions {
		// Stagger the sessions of all workers evenly over one interval.
		first := start.Add(interval * time.Duration(i*l.job.Workers+l.job.Index) / time.Duration(n))
		s.plan(first, end, interval)
		wg.Go(func() { s.read(end.Add(callTimeout)) })
	}
	l.pace(ctx)
	wg.Wait()
	rs := make([]report, len(l.sessions))
	for i, s := range l.sessions {
		rs[i] = s.t.report("done")
		rs[i].Latency, rs[i].Service = s.latency, s.service
	}
	sum := total(rs)
	sum.Phase, sum.Elapsed = "done", time.Since(start)
	return sum
}

// plan schedules requests at first, first+interval, ... before end.
func (s *whoamiSession) plan(first, end time.Time, interval time.Duration) {
	for at := first; at.Before(end); at = at.Add(interval) {
		s.scheduled = append(s.scheduled, at)
	}
	s.sent = make([]atomic.Int64, len(s.scheduled))
	s.latency = make([]int64, 0, len(s.scheduled))
	s.service = make([]int64, 0, len(s.scheduled))
}

// pace sends every session's requests, in time order, at their scheduled times (or at
// once when late). It sleeps in nanosleep(2) on its own OS thread because a Go timer
// may fire up to a millisecond late (the runtime's poller waits in whole milliseconds),
// and that lateness would show as gateway latency. The extra P lets the readers run
// while this goroutine's P sits in the system call.
func (l *whoamiLoad) pace(ctx context.Context) {
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var buf []byte
	for i := 0; ; i++ {
		more := false
		for k, s := range l.sessions { // staggered within an interval: time order
			if i >= len(s.scheduled) || s.broken {
				continue
			}
			more = true
			if ctx.Err() != nil {
				return
			}
			nanosleep(time.Until(s.scheduled[i]))
			buf = l.request(buf[:0], k, i)
			s.sent[i].Store(time.Now().UnixNano())
			if err := s.conn.WriteMessage(websocket.TextMessage, buf); err != nil {
				s.t.add(err) // the reader fails too, and counts the replies it missed
				s.broken = true
			}
		}
		if !more {
			return
		}
	}
}

// request appends the i-th request of session k to buf: whoami, or for the query
// scenario a query "get" on the job's contexts taken round-robin (each session
// starting at its own).
func (l *whoamiLoad) request(buf []byte, k, i int) []byte {
	if l.job.Scenario != "query" {
		buf = append(buf, `{"jsonrpc":"2.0","method":"whoami","id":`...)
	} else {
		c := l.job.Contexts[((k*l.job.Workers+l.job.Index)+i)%len(l.job.Contexts)]
		buf = append(buf, `{"jsonrpc":"2.0","method":"query","params":{"contextId":"`...)
		buf = append(buf, c...)
		buf = append(buf, `","method":"get"},"id":`...)
	}
	buf = strconv.AppendInt(buf, int64(i+1), 10)
	return append(buf, '}')
}

// nanosleep sleeps d in the kernel, resuming after signals (Go preempts with SIGURG).
func nanosleep(d time.Duration) {
	for d > 0 {
		ts := syscall.NsecToTimespec(int64(d))
		if syscall.Nanosleep(&ts, &ts) == nil {
			return
		}
		d = time.Duration(ts.Nano())
	}
}

// read takes replies until every scheduled request has one or the deadline passes;
// requests left without a reply are errors.
func (s *whoamiSession) read(deadline time.Time) {
	_ = s.conn.SetReadDeadline(deadline)
	for got := 0; got < len(s.scheduled); got++ {
		_, msg, err := s.conn.ReadMessage()
		now := time.Now()
		if err != nil {
			for range len(s.scheduled) - got {
				s.t.add(fmt.Errorf("no reply: %w", err))
			}
			return
		}
		var resp struct {
			ID    int             `json:"id"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(msg, &resp); err != nil || resp.ID < 1 || resp.ID > len(s.scheduled) {
			s.t.add(fmt.Errorf("unexpected reply %.100s", msg))
			continue
		}
		if resp.Error != nil {
			s.t.add(fmt.Errorf("reply error: %s", resp.Error))
			continue
		}
		s.t.add(nil)
		s.latency = append(s.latency, int64(now.Sub(s.scheduled[resp.ID-1])))
		s.service = append(s.service, now.UnixNano()-s.sent[resp.ID-1].Load())
	}
}

func (l *whoamiLoad) close() {
	for _, s := range l.sessions {
		_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		s.conn.Close()
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
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
	base.Sessions, base.Duration, base.Warmup, base.Rate = whoamiSessions, e.warmup+e.duration, e.warmup, e.whoamiRate/whoamiSessions
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
	warm := ""
	if e.warmup > 0 {
		warm = fmt.Sprintf(" after a %s warm-up (its latencies left out)", e.warmup)
	}
	over := ""
	if len(base.Contexts) > 0 {
		over = fmt.Sprintf(" on %d contexts", len(base.Contexts))
	}
	return result{
		Figure: "p99 " + lat(0.99),
		Pass:   quantile(sum.Latency, 0.99) <= int64(time.Millisecond),
		Notes: fmt.Sprintf("offered %.0f req/s over %d sessions%s%s, achieved %.0f req/s, %d errors; from scheduled send: p50 %s, p99 %s, p99.9 %s, max %s; "+
			"from actual send: p50 %s, p99 %s, p99.9 %s; sends late by p99 %s, max %s; %s; %s (%s)",
			e.whoamiRate, whoamiSessions, over, warm, float64(sum.OK)/wall, sum.Errors, lat(0.5), lat(0.99), lat(0.999), lat(1),
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
// The sessions are opened with gorilla/websocket; the load itself is one thread
// driving the sockets directly (epoll.go): it writes each request when it is due and
// sleeps in epoll_pwait2 until the next one is due or a reply arrives. No goroutine,
// thread hand-off, timer or allocation per request, so the load generator takes as
// little CPU from the gateway as it can, and a reply is timed when its read returns.
type whoamiLoad struct {
	job      job
	sessions []*whoamiSession
}

// whoamiSession is one session's connection and the times of its requests, indexed
// by request id - 1.
type whoamiSession struct {
	conn      *websocket.Conn
	sock      *rawSocket
	scheduled []time.Time
	sent      []int64   // unix nanoseconds
	measure   time.Time // requests scheduled before it are warm-up: no latency kept
	latency   []int64   // from scheduled send to reply, per reply
	service   []int64   // from actual send to reply, per reply
	got       int       // replies read
	t         tally
	broken    bool // the connection failed
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
	for i, s := range l.sessions {
		// Stagger the sessions of all workers evenly over one interval.
		first := start.Add(interval * time.Duration(i*l.job.Workers+l.job.Index) / time.Duration(n))
		s.plan(first, end, interval)
		s.measure = start.Add(l.job.Warmup)
	}
	if err := l.drive(ctx, end.Add(callTimeout)); err != nil {
		return report{Phase: "done", Errors: 1, FirstErr: err.Error()}
	}
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
	s.sent = make([]int64, len(s.scheduled))
	s.latency = make([]int64, 0, len(s.scheduled))
	s.service = make([]int64, 0, len(s.scheduled))
}

// drive sends every session's requests, in time order, at their scheduled times (or
// at once when late), and reads the replies as they come, until every request has a
// reply or deadline passes; requests left without a reply are errors.
func (l *whoamiLoad) drive(ctx context.Context, deadline time.Time) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	socks := make([]*rawSocket, len(l.sessions))
	for k, s := range l.sessions {
		sock, err := detach(s.conn)
		if err != nil {
			return err
		}
		s.sock, socks[k] = sock, sock
	}
	poll, err := newPoller(socks)
	if err != nil {
		return err
	}
	defer poll.close()
	var buf []byte
	next, pending := 0, len(l.sessions) // next request index of the round; sessions with requests left
	k := 0                              // the next session to send in this round
	for {
		now := time.Now()
		if ctx.Err() != nil || now.After(deadline) {
			break
		}
		// Send what is due: round i sends request i of every session, in the
		// sessions' staggered order, which is time order.
		wait := time.Duration(-1)
		for pending > 0 {
			s := l.sessions[k]
			if next < len(s.scheduled) && !s.broken {
				if d := s.scheduled[next].Sub(now); d > 0 {
					wait = d
					break
				}
				buf = l.request(buf[:0], k, next)
				s.sent[next] = time.Now().UnixNano()
				if err := s.sock.writeText(buf); err != nil {
					s.fail(fmt.Errorf("send: %w", err))
				}
			}
			if k++; k == len(l.sessions) {
				k, next = 0, next+1
				pending = 0
				for _, s := range l.sessions {
					if next < len(s.scheduled) && !s.broken {
						pending++
					}
				}
			}
		}
		if pending == 0 && l.allAnswered() {
			break
		}
		if wait < 0 || now.Add(wait).After(deadline) {
			wait = time.Until(deadline)
		}
		err := poll.wait(wait, func(i int) {
			s := l.sessions[i]
			if err := s.sock.readFrames(s.reply); err != nil {
				s.fail(err)
			}
		})
		if err != nil {
			return err
		}
	}
	for _, s := range l.sessions {
		s.fail(errors.New("no reply before the deadline"))
	}
	return nil
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

// allAnswered reports whether every session has every reply or has failed.
func (l *whoamiLoad) allAnswered() bool {
	for _, s := range l.sessions {
		if !s.broken && s.got < len(s.scheduled) {
			return false
		}
	}
	return true
}

// fail counts every request of s still without a reply as an error, once.
func (s *whoamiSession) fail(err error) {
	if s.broken {
		return
	}
	s.broken = true
	for range len(s.scheduled) - s.got {
		s.t.add(fmt.Errorf("no reply: %w", err))
	}
}

// reply records one text message read at now: a JSON-RPC reply to one of the
// session's requests.
func (s *whoamiSession) reply(msg []byte, now time.Time) {
	id, isErr, ok := replyID(msg)
	if !ok || id < 1 || id > len(s.scheduled) || s.sent[id-1] == 0 {
		s.t.add(fmt.Errorf("unexpected reply %.100s", msg))
		return
	}
	s.got++
	if isErr {
		s.t.add(fmt.Errorf("reply error: %.200s", msg))
		return
	}
	s.t.add(nil)
	if s.scheduled[id-1].Before(s.measure) {
		return
	}
	s.latency = append(s.latency, int64(now.Sub(s.scheduled[id-1])))
	s.service = append(s.service, now.UnixNano()-s.sent[id-1])
}

// replyID finds the numeric id of a JSON-RPC reply and whether it is an error
// without decoding the rest, falling back to encoding/json for any other shape.
func replyID(msg []byte) (id int, isErr, ok bool) {
	if i := bytes.Index(msg, []byte(`"id":`)); i >= 0 && bytes.HasPrefix(msg, []byte(`{"jsonrpc":"2.0",`)) {
		rest := msg[i+len(`"id":`):]
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if n, err := strconv.Atoi(string(rest[:j])); err == nil && j < len(rest) && rest[j] == ',' {
			switch after := rest[j+1:]; {
			case bytes.HasPrefix(after, []byte(`"result":`)):
				return n, false, true
			case bytes.HasPrefix(after, []byte(`"error":`)):
				return n, true, true
			}
		}
	}
	var resp struct {
		ID    int             `json:"id"`
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(msg, &resp); err != nil {
		return 0, false, false
	}
	return resp.ID, resp.Error != nil, true
}

func (l *whoamiLoad) close() {
	for _, s := range l.sessions {
		if s.sock != nil { // detached: the gorilla conn no longer owns the socket
			s.sock.close()
			continue
		}
		_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		s.conn.Close()
	}
}

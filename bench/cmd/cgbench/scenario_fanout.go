package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circlegate/circlegate/client"
	"github.com/circlegate/circlegate/tenant"
)

// The fan-out scenarios put fanoutSubscribers subscribers on one public counter
// context, over WebSocket (fanout) or SSE (fanout-sse), and offer fanoutRate mutations
// per second to it from the parent: each commit is one StateMutation event, so
// 10,000 subscribers at 100 mutations/s ask for 1,000,000 deliveries/s. Each worker
// reads its subscribers' sockets raw on one goroutine (fanout_reader.go) so that the
// load generators cost as little CPU as they can; delivery latency runs from the tx
// time in the event (the job's acceptance, millisecond resolution) to the read that
// brought the frame.
const (
	fanoutSubscribers = 10000
	fanoutRate        = 100.0
	fanoutWorkers     = 4
	// fanoutSample keeps one latency sample per this many deliveries.
	fanoutSample = 16
	// fanoutDrain is how long subscribers keep reading after the last mutation.
	fanoutDrain = 3 * time.Second
)

func runFanout(ctx context.Context, e *env) (result, error)    { return fanout(ctx, e, "ws") }
func runFanoutSSE(ctx context.Context, e *env) (result, error) { return fanout(ctx, e, "sse") }

func fanout(ctx context.Context, e *env, transport string) (result, error) {
	gw, err := startGateway(ctx, e, gatewayConfig{MaxConnections: e.fanoutSubscribers + 100, EventWriteInterval: e.eventWriteInterval})
	if err != nil {
		return result{}, err
	}
	defer gw.stop()
	owner, _, err := setupCounter(ctx, e, gw, 0)
	if err != nil {
		return result{}, err
	}
	defer owner.Close()
	contextID, err := createPublicCounter(ctx, owner)
	if err != nil {
		return result{}, err
	}
	base := job{Scenario: "fanout-" + transport, URL: gw.url(), Contexts: []string{contextID},
		Sessions: e.fanoutSubscribers, Duration: e.duration + fanoutDrain}
	if transport == "sse" {
		if base.Token, err = httpToken(ctx, gw); err != nil {
			return result{}, err
		}
	}
	began := time.Now()
	ws, err := startWorkers(e, splitJob(base, fanoutWorkers))
	if err != nil {
		return result{}, err
	}
	defer ws.stop()
	ready, err := ws.collect(ctx, "ready", 3*time.Minute)
	if err != nil {
		return result{}, err
	}
	if sum := total(ready); sum.OK != e.fanoutSubscribers {
		return result{}, fmt.Errorf("%d of %d subscribers ready, first error: %s", sum.OK, e.fanoutSubscribers, sum.FirstErr)
	}
	e.logf("%d %s subscribers ready in %s", e.fanoutSubscribers, transport, time.Since(began).Round(time.Millisecond))

	meter, err := startMeter(ctx, gw)
	if err != nil {
		return result{}, err
	}
	writeMetrics := []string{"circlegate_ws_messages_sent_total", "circlegate_ws_writes_total"}
	before, err := gw.metrics(ctx, writeMetrics...)
	if err != nil {
		return result{}, err
	}
	start := time.Now().Add(300 * time.Millisecond)
	if err := ws.send(command{Start: start}); err != nil {
		return result{}, err
	}
	committed, mutErrs := driveMutations(ctx, owner, contextID, start, e.duration, fanoutRate)
	done, err := ws.collect(ctx, "done", e.duration+fanoutDrain+time.Minute)
	if err != nil {
		return result{}, err
	}
	sum := total(done)
	use, err := meter.stop(ctx, sum.CPU-total(ready).CPU)
	if err != nil {
		return result{}, err
	}
	after, err := gw.metrics(ctx, writeMetrics...)
	if err != nil {
		return result{}, err
	}
	sent, writes := after[writeMetrics[0]]-before[writeMetrics[0]], after[writeMetrics[1]]-before[writeMetrics[1]]
	want := committed * e.fanoutSubscribers
	slices.Sort(sum.Latency)
	lat := func(q float64) string { return fmtNanos(quantile(sum.Latency, q)) }
	wall := e.duration.Seconds()
	rate := float64(sum.OK) / wall
	p99 := time.Duration(quantile(sum.Latency, 0.99))
	missing := want - sum.OK
	return result{
		Figure: fmt.Sprintf("%.0f deliveries/s, p99 %s", rate, lat(0.99)),
		Pass:   rate >= 500000 && p99 <= 100*time.Millisecond && missing == 0 && sum.Errors == 0,
		Notes: fmt.Sprintf("%d %s subscribers on one context, %d mutations committed in %.0f s (%d failed): %d of %d deliveries (%d missing, %d out of order or duplicated); latency from tx time p50 %s, p99 %s, p99.9 %s, max %s; %.0f writes, %.1f events per write; %s; %s (%s)",
			e.fanoutSubscribers, transport, committed, wall, mutErrs, sum.OK, want, missing, sum.Errors,
			lat(0.5), lat(0.99), lat(0.999), lat(1), writes, sent/max(writes, 1), use.cores(wall+fanoutDrain.Seconds()), gcNote(use), e.placement()),
	}, nil
}

func gcNote(u usage) string {
	return fmt.Sprintf("gateway allocated %.0f MiB, %.0f GC cycles", u.allocBytes/(1<<20), u.gcCycles)
}

// createPublicCounter creates a public counter context for the subscribers (guests).
func createPublicCounter(ctx context.Context, owner *client.Client) (string, error) {
	var apps struct {
		Apps []struct {
			AppID string `json:"appId"`
		} `json:"apps"`
	}
	if err := owner.Call(ctx, "app.list", nil, &apps); err != nil || len(apps.Apps) == 0 {
		return "", fmt.Errorf("app.list: %v", err)
	}
	var c struct {
		ContextID string `json:"contextId"`
	}
	err := owner.Call(ctx, "context.create", map[string]any{"appId": apps.Apps[0].AppID, "public": true}, &c)
	return c.ContextID, err
}

// httpToken signs in a fresh key through the browser forms and returns its token.
func httpToken(ctx context.Context, gw *gateway) (string, error) {
	keys, err := newKeys(1)
	if err != nil {
		return "", err
	}
	pub := tenant.PubKeyHex(keys[0].PubKey())
	base := "http://" + gw.addr + "/" + gw.tenant
	var n struct {
		Nonce string `json:"nonce"`
	}
	if err := httpJSON(ctx, http.MethodGet, base+"/auth/nonce?pubkey="+pub, nil, &n); err != nil {
		return "", err
	}
	body, _ := json.Marshal(map[string]string{"pubkey": pub, "signature": tenant.SignPersonal(keys[0], []byte(n.Nonce))})
	var tok struct {
		Token string `json:"token"`
	}
	err = httpJSON(ctx, http.MethodPost, base+"/auth/token", body, &tok)
	return tok.Token, err
}

func httpJSON(ctx context.Context, method, u string, body []byte, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %d %s", method, u, resp.StatusCode, b)
	}
	return json.Unmarshal(b, out)
}

// driveMutations offers rate mutations per second to one context from start for d,
// open loop (each on its own goroutine at its scheduled time), and returns how many
// committed and failed.
func driveMutations(ctx context.Context, c *client.Client, contextID string, start time.Time, d time.Duration, rate float64) (committed, failed int) {
	interval := time.Duration(float64(time.Second) / rate)
	var ok, bad atomic.Int64
	var wg sync.WaitGroup
	for at := start; at.Before(start.Add(d)); at = at.Add(interval) {
		if sleep(ctx, time.Until(at)) != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if err := c.Call(cctx, "mutate", map[string]any{"contextId": contextID, "method": "increment"}, nil); err != nil {
				bad.Add(1)
				return
			}
			ok.Add(1)
		}()
	}
	wg.Wait()
	return int(ok.Load()), int(bad.Load())
}

// fanoutLoad is the worker side: Sessions subscribers of the job's context.
type fanoutLoad struct {
	job     job
	conns   []net.Conn
	pending [][]byte // what the SSE heads' readers buffered past the head
	reader  *fanoutReader
}

func (l *fanoutLoad) prepare(ctx context.Context) report {
	if strings.HasSuffix(l.job.Scenario, "-sse") {
		return l.prepareSSE(ctx)
	}
	conns, rep := openJobSessions(ctx, l.job)
	var t tally
	for _, c := range conns {
		var res struct {
			Subscribed []string `json:"subscribed"`
		}
		err := rawCall(c, "subscribe", map[string]any{"contextIds": l.job.Contexts}, &res)
		if err == nil && len(res.Subscribed) != 1 {
			err = errors.New("subscribe did not subscribe")
		}
		t.add(err)
		if err != nil {
			break
		}
		// No event flows before the start, so gorilla's reader holds nothing unread:
		// from here on the raw connection is read directly.
		l.conns = append(l.conns, c.NetConn())
	}
	r := t.report("ready")
	if rep.Errors > 0 {
		r.Errors, r.FirstErr = rep.Errors, rep.FirstErr
	}
	return l.takeOver(r, false)
}

// takeOver hands the open connections to a fanoutReader, unless preparing failed.
func (l *fanoutLoad) takeOver(r report, sse bool) report {
	if r.Errors > 0 {
		return r
	}
	rd, err := newFanoutReader(l.conns, l.pending, sse)
	if err != nil {
		return report{Phase: "ready", Errors: 1, FirstErr: err.Error()}
	}
	l.reader = rd
	return r
}

// prepareSSE opens Sessions SSE streams subscribed to the context in their URL.
func (l *fanoutLoad) prepareSSE(ctx context.Context) report {
	u, err := url.Parse(l.job.URL)
	if err != nil {
		return report{Phase: "ready", Errors: 1, FirstErr: err.Error()}
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(l.job.LocalIP)}, Timeout: 10 * time.Second}
	req := "GET " + u.Path + "/sse?contextId=" + url.QueryEscape(l.job.Contexts[0]) + " HTTP/1.1\r\nHost: " + u.Host +
		"\r\nAuthorization: Bearer " + l.job.Token + "\r\nAccept: text/event-stream\r\n\r\n"
	var t tally
	for range l.job.Sessions {
		c, err := d.DialContext(ctx, "tcp", u.Host)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(15 * time.Second))
			_, err = io.WriteString(c, req)
		}
		var r *bufio.Reader
		if err == nil {
			r, err = readSSEHead(bufio.NewReaderSize(c, 4096))
		}
		t.add(err)
		if err != nil {
			if c != nil {
				c.Close()
			}
			break
		}
		_ = c.SetDeadline(time.Time{})
		pending, _ := r.Peek(r.Buffered())
		l.conns = append(l.conns, c)
		l.pending = append(l.pending, pending)
	}
	return l.takeOver(t.report("ready"), true)
}

// readSSEHead reads the response head and the stream's first two records (connect
// and subscribed), and returns the reader of the rest of the body (the stream is
// not chunked: it ends with the connection).
func readSSEHead(r *bufio.Reader) (*bufio.Reader, error) {
	status, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.Contains(status, " 200 ") {
		return nil, fmt.Errorf("SSE: %s", strings.TrimSpace(status))
	}
	for { // headers
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if line == "\r\n" {
			break
		}
	}
	body := r
	subscribed := false
	for {
		line, err := body.ReadString('\n')
		if err != nil {
			return nil, err
		}
		switch {
		case line == "event: subscribed\n":
			subscribed = true
		case subscribed && strings.HasPrefix(line, "data: "):
			if !strings.Contains(line, `"subscribed":["`) {
				return nil, fmt.Errorf("SSE: subscription refused: %s", line)
			}
		case subscribed && line == "\n":
			return body, nil
		}
	}
}

func (l *fanoutLoad) run(ctx context.Context, start time.Time) report {
	l.reader.run(start.Add(l.job.Duration))
	return l.reader.report(start)
}

func (l *fanoutLoad) close() {
	if l.reader != nil {
		l.reader.close()
		return
	}
	for _, c := range l.conns {
		c.Close()
	}
}

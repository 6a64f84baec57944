package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/circlegate/circlegate/client"
	"github.com/stripe/stripe-go/v76/webhook"
)

// The webhook scenario: Stripe events, signed like Stripe signs them, posted by many
// keep-alive HTTP clients to POST /webhooks/stripe/<tenant>; each event type has a
// route to its own ledger context (examples/apps/ledger, method record). A 200 means
// the event was verified, queued, executed and committed durably, and logged.
const (
	webhookWorkers = 4
	// webhookSecret is the tenant's Stripe signing secret ([[tenants.webhook_secrets]]).
	webhookSecret = "whsec_cgbench_webhook_signing_secret"
)

// runWebhook installs the ledger, creates e.webhookContexts contexts with one route
// each (event type bench.<k> to context k), runs e.webhookLoops closed loops of
// signed Stripe posts for e.duration, reports verified deliveries per second, and
// checks that the ledgers hold exactly the acknowledged events.
func runWebhook(ctx context.Context, e *env) (result, error) {
	gw, err := startGateway(ctx, e, gatewayConfig{MaxConnections: 1000, StripeSecret: webhookSecret})
	if err != nil {
		return result{}, err
	}
	defer gw.stop()
	owner, contexts, err := setupLedger(ctx, e, gw, e.webhookContexts)
	if err != nil {
		return result{}, err
	}
	defer owner.Close()
	types := make([]string, len(contexts))
	for i := range types {
		types[i] = fmt.Sprintf("bench.%d", i)
	}
	base := job{
		Scenario: "webhook", URL: "http://" + gw.addr + "/webhooks/stripe/" + gw.tenant, Secret: webhookSecret,
		EventTypes: types, Loops: e.webhookLoops, Duration: e.duration,
	}
	ws, err := startWorkers(e, splitJob(base, min(webhookWorkers, e.webhookLoops)))
	if err != nil {
		return result{}, err
	}
	defer ws.stop()
	ready, err := ws.collect(ctx, "ready", time.Minute)
	if err != nil {
		return result{}, err
	}
	sum, use, err := runLoad(ctx, e, gw, ws, ready, 300*time.Millisecond)
	if err != nil {
		return result{}, err
	}
	// Every acknowledged event is recorded once; a failed post may or may not have
	// been applied.
	counted, err := sumLedgers(ctx, owner, contexts)
	if err != nil {
		return result{}, fmt.Errorf("check ledgers: %w", err)
	}
	if counted < sum.OK || counted > sum.OK+sum.Errors {
		return result{}, fmt.Errorf("HARNESS FAILURE: ledgers count %d events, but %d deliveries were acknowledged (%d failed)", counted, sum.OK, sum.Errors)
	}
	check := fmt.Sprintf("ledgers count %d events = acknowledged (checked with query count)", counted)
	if counted != sum.OK {
		check = fmt.Sprintf("ledgers count %d: acknowledged %d plus %d of the %d failed", counted, sum.OK, counted-sum.OK, sum.Errors)
	}
	slices.Sort(sum.Latency)
	lat := func(q float64) string { return fmtNanos(quantile(sum.Latency, q)) }
	wall := sum.Elapsed.Seconds()
	rate := float64(sum.OK) / wall
	return result{
		Figure: fmt.Sprintf("%.0f webhooks/s", rate),
		Pass:   rate >= 5000,
		Notes: fmt.Sprintf("%d verified Stripe deliveries (verify, route, queue, commit, log) in %.1f s with %d keep-alive HTTP clients over %d routes and contexts, %d errors; latency p50 %s, p99 %s, p99.9 %s, max %s; %s; %s; %s (%s)",
			sum.OK, wall, e.webhookLoops, len(contexts), sum.Errors, lat(0.5), lat(0.99), lat(0.999), lat(1),
			check, use.perOp(sum.OK), use.cores(wall), e.placement()),
	}, nil
}

// setupLedger opens an owner session, installs ledger.wasm from e.appDir, creates n
// contexts and routes the Stripe event type bench.<k> to record on context k.
func setupLedger(ctx context.Context, e *env, gw *gateway, n int) (*client.Client, []string, error) {
	wasm, err := os.ReadFile(filepath.Join(e.appDir, "ledger.wasm"))
	if err != nil {
		return nil, nil, fmt.Errorf("%w (build it with: make apps)", err)
	}
	key, err := client.ParsePrivateKey(gw.owner)
	if err != nil {
		return nil, nil, err
	}
	owner, err := openSession(ctx, gw.url(), dialer("127.0.0.1"), key)
	if err != nil {
		return nil, nil, fmt.Errorf("owner session: %w", err)
	}
	var app struct {
		AppID string `json:"appId"`
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Minute) // compiles the module
	err = owner.Call(ictx, "app.install", map[string]any{"wasm": base64.StdEncoding.EncodeToString(wasm), "name": "ledger"}, &app)
	cancel()
	if err != nil {
		owner.Close()
		return nil, nil, fmt.Errorf("app.install: %w", err)
	}
	contexts := make([]string, n)
	err = parallel(ctx, n, func(ctx context.Context, i int) error {
		var c struct {
			ContextID string `json:"contextId"`
		}
		if err := owner.Call(ctx, "context.create", map[string]any{"appId": app.AppID}, &c); err != nil {
			return fmt.Errorf("context.create: %w", err)
		}
		contexts[i] = c.ContextID
		route := map[string]any{"provider": "stripe", "eventType": fmt.Sprintf("bench.%d", i), "contextId": c.ContextID, "method": "record"}
		if err := owner.Call(ctx, "webhook.route.set", route, nil); err != nil {
			return fmt.Errorf("webhook.route.set: %w", err)
		}
		return nil
	})
	if err == nil {
		var counted int
		if counted, err = sumLedgers(ctx, owner, contexts); err == nil && counted != 0 {
			err = fmt.Errorf("new ledgers count %d events, want 0", counted)
		}
	}
	if err != nil {
		owner.Close()
		return nil, nil, err
	}
	e.logf("installed ledger.wasm, created %d contexts with a route each", n)
	return owner, contexts, nil
}

// sumLedgers queries count on every context and adds up the counts.
func sumLedgers(ctx context.Context, owner *client.Client, contexts []string) (int, error) {
	var sum atomic.Int64
	err := parallel(ctx, len(contexts), func(ctx context.Context, i int) error {
		var r struct {
			Output struct {
				Count *int64 `json:"count"`
			} `json:"output"`
		}
		if err := owner.Call(ctx, "query", map[string]any{"contextId": contexts[i], "method": "count"}, &r); err != nil {
			return fmt.Errorf("query count: %w", err)
		}
		if r.Output.Count == nil {
			return fmt.Errorf("query count on %s: no count in the output", contexts[i])
		}
		sum.Add(*r.Output.Count)
		return nil
	})
	return int(sum.Load()), err
}

// webhookLoad is the worker side of webhook: Loops closed loops, each with its own
// keep-alive connection, posting signed Stripe events with ids unique to the run.
// Loop k of worker w is loop g = k*Workers + w of L in all; its i-th event has type
// EventTypes[(g + i*L) mod len(EventTypes)]. Like mutate's, the loops run from one
// thread with epoll (epoll.go), writing HTTP/1.1 requests and parsing the replies by
// hand: net/http's client costs more CPU per request than the gateway's verification.
type webhookLoad struct {
	job   job
	runID string
	host  string // of the URL, for the Host header
	path  string
	loops []*webhookLoop
}

// webhookLoop is one connection's closed loop.
type webhookLoop struct {
	sock    *rawSocket
	g       int // the loop's number among all workers' loops
	i       int // the event outstanding (0-based)
	sent    time.Time
	latency []int64
	t       tally
}

func (l *webhookLoad) prepare(ctx context.Context) report {
	u, err := url.Parse(l.job.URL)
	if err != nil {
		return report{Phase: "ready", Errors: 1, FirstErr: err.Error()}
	}
	l.host, l.path = u.Host, u.RequestURI()
	l.runID = strconv.FormatInt(time.Now().UnixNano(), 36)
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(l.job.LocalIP)}, Timeout: 10 * time.Second}
	var t tally
	for k := range l.job.Loops {
		c, err := nd.DialContext(ctx, "tcp", l.host)
		var sock *rawSocket
		if err == nil {
			sock, err = detachConn(c)
		}
		t.add(err)
		if err != nil {
			break
		}
		l.loops = append(l.loops, &webhookLoop{sock: sock, g: k*l.job.Workers + l.job.Index, latency: make([]int64, 0, 4096)})
	}
	return t.report("ready")
}

func (l *webhookLoad) run(ctx context.Context, start time.Time) report {
	loops := l.job.Loops * l.job.Workers
	socks := make([]*rawSocket, len(l.loops))
	for k, w := range l.loops {
		socks[k] = w.sock
	}
	var req []byte
	driver := closedLoops{
		socks: socks,
		send: func(k int) error {
			w := l.loops[k]
			w.sent = time.Now()
			req = l.request(req[:0], w.g, w.i, loops, w.sent)
			return w.sock.write(req)
		},
		receive: func(k int, now time.Time) (int, error) {
			w := l.loops[k]
			status, body, size, ok, err := parseResponse(w.sock.in)
			if err != nil || !ok {
				return 0, err
			}
			var r struct {
				Outcome string `json:"outcome"`
			}
			if status != http.StatusOK || json.Unmarshal(body, &r) != nil || r.Outcome != "applied" {
				w.t.add(fmt.Errorf("webhook: %d %.200s", status, body))
			} else {
				w.t.add(nil)
				w.latency = append(w.latency, int64(now.Sub(w.sent)))
			}
			if len(w.sock.in) > size {
				return 1, errors.New("webhook: bytes after the reply")
			}
			w.sock.in = w.sock.in[:0]
			w.i++
			return 1, nil
		},
		fail: func(k int, err error) { l.loops[k].t.add(fmt.Errorf("webhook: %w", err)) },
	}
	end := start.Add(l.job.Duration)
	if err := driver.run(ctx, start, end, end.Add(callTimeout)); err != nil {
		return report{Phase: "done", Errors: 1, FirstErr: err.Error()}
	}
	rs := make([]report, len(l.loops))
	for k, w := range l.loops {
		rs[k] = w.t.report("done")
		rs[k].Latency = w.latency
	}
	sum := total(rs)
	sum.Phase, sum.Elapsed = "done", time.Since(start)
	return sum
}

// request appends loop g's i-th event, signed at now, as an HTTP request to buf.
func (l *webhookLoad) request(buf []byte, g, i, loops int, now time.Time) []byte {
	typ := l.job.EventTypes[(g+i*loops)%len(l.job.EventTypes)]
	id := fmt.Sprintf("evt_%s_%d_%d", l.runID, g, i)
	body := fmt.Appendf(nil, `{"id":%q,"object":"event","api_version":"2020-08-27","created":%d,"type":%q,"livemode":false,"pending_webhooks":1,"data":{"object":{"id":"pi_%d_%d","object":"payment_intent","amount":2000,"currency":"eur","status":"succeeded"}}}`,
		id, now.Unix(), typ, g, i)
	buf = fmt.Appendf(buf, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nStripe-Signature: t=%d,v1=%s\r\nContent-Length: %d\r\n\r\n",
		l.path, l.host, now.Unix(), hex.EncodeToString(webhook.ComputeSignature(now, body, l.job.Secret)), len(body))
	return append(buf, body...)
}

func (l *webhookLoad) close() {
	for _, w := range l.loops {
		_ = syscall.Close(w.sock.fd)
	}
}

package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circlegate/circlegate/client"
	"github.com/gorilla/websocket"
)

// The application scenarios run the counter example (bin/apps/counter.wasm, built by
// `make apps`) on contexts the tenant owner creates; every client session
// authenticates with the owner's key, since only the owner and members may mutate.
const (
	// mutateWorkers spreads the mutate loops over two load generators, each one
	// thread (epoll.go): more would only add context switches.
	mutateWorkers = 2
	// mutateTargetLoops is the number of closed loops mutate's target is set for.
	mutateTargetLoops = 64
	// setupParallel is how many app.install/context.create/query calls the parent has
	// in flight while it sets up and checks.
	setupParallel = 32
)

// runMutate installs the counter, creates e.mutateContexts contexts, runs
// e.mutateLoops closed loops of mutate "increment" (contexts round-robin) for
// e.duration, reports durable mutations per second, and checks that the counters add
// up to the acknowledged mutations.
func runMutate(ctx context.Context, e *env) (result, error) {
	gw, err := startGateway(ctx, e, gatewayConfig{MaxConnections: 1000})
	if err != nil {
		return result{}, err
	}
	defer gw.stop()
	owner, contexts, err := setupCounter(ctx, e, gw, e.mutateContexts)
	if err != nil {
		return result{}, err
	}
	defer owner.Close()
	ws, ready, err := startMutateLoad(ctx, e, gw, "mutate", contexts, e.mutateLoops, e.duration)
	if err != nil {
		return result{}, err
	}
	defer ws.stop()

	r0, err := gw.metricsOrZero(ctx, roundMetrics...)
	if err != nil {
		return result{}, err
	}
	sum, use, err := runLoad(ctx, e, gw, ws, ready, 300*time.Millisecond)
	if err != nil {
		return result{}, err
	}
	r1, err := gw.metricsOrZero(ctx, roundMetrics...)
	if err != nil {
		return result{}, err
	}
	// Every acknowledged mutation is durable and counted once; a failed one (no reply
	// in time) may or may not have been applied.
	counted, err := sumCounters(ctx, owner, contexts)
	if err != nil {
		return result{}, fmt.Errorf("check counters: %w", err)
	}
	if counted < sum.OK || counted > sum.OK+sum.Errors {
		return result{}, fmt.Errorf("HARNESS FAILURE: counters sum to %d, but %d mutations were acknowledged (%d failed)", counted, sum.OK, sum.Errors)
	}
	check := fmt.Sprintf("counters sum to %d = acknowledged (checked with query get)", counted)
	if counted != sum.OK {
		check = fmt.Sprintf("counters sum to %d: acknowledged %d plus %d of the %d failed", counted, sum.OK, counted-sum.OK, sum.Errors)
	}
	slices.Sort(sum.Latency)
	lat := func(q float64) string { return fmtNanos(quantile(sum.Latency, q)) }
	wall := sum.Elapsed.Seconds()
	rate := float64(sum.OK) / wall
	return result{
		Figure:    fmt.Sprintf("%.0f mutations/s", rate),
		Pass:      rate >= 20000,
		Reference: e.mutateLoops != mutateTargetLoops, // the target is set for 64 clients
		Notes: fmt.Sprintf("%d durable mutations in %.1f s with %d closed loops over %d contexts, %d errors; latency p50 %s, p99 %s, p99.9 %s, max %s; %s; %s; %s; %s (%s)",
			sum.OK, wall, e.mutateLoops, len(contexts), sum.Errors, lat(0.5), lat(0.99), lat(0.999), lat(1),
			check, describeRounds(r0, r1), use.perOp(sum.OK), use.cores(wall), e.placement()),
	}, nil
}

// roundMetrics are the gateway's histograms of its commit rounds (one storage sync
// each) and of its mutations' time in the queue, as _sum and _count.
var roundMetrics = []string{
	"circlegate_execution_round_jobs_sum", "circlegate_execution_round_jobs_count",
	"circlegate_execution_round_execute_seconds_sum", "circlegate_execution_round_commit_seconds_sum",
	`circlegate_execution_job_duration_seconds_sum{kind="mutate"}`, `circlegate_execution_job_duration_seconds_count{kind="mutate"}`,
}

// describeRounds describes the commit rounds between two scrapes of roundMetrics: how many,
// their mean size, the mean time to execute and to commit one, and a mutation's mean
// time from its submission to its commit.
func describeRounds(before, after map[string]float64) string {
	d := func(i int) float64 { return after[roundMetrics[i]] - before[roundMetrics[i]] }
	n := d(1)
	if n <= 0 {
		return "no commit rounds"
	}
	jobs := fmt.Sprintf("; a mutation took %.2f ms on average from its submission to its commit", d(4)/max(d(5), 1)*1000)
	return fmt.Sprintf("%.0f commit rounds of %.1f jobs, each executed in %.2f ms and committed in %.2f ms on average%s",
		n, d(0)/n, d(2)/n*1000, d(3)/n*1000, jobs)
}

// runRPCLoop runs mutate's closed loops, on the same sessions and load generators,
// calling whoami instead: the request path alone (frames, JSON-RPC, the session's
// reader, the reply's write), without the app, the queue and the commit. It is the
// reference mutate is measured against: what this machine's CPUs do per request
// before a mutation adds any work of its own.
func runRPCLoop(ctx context.Context, e *env) (result, error) {
	gw, err := startGateway(ctx, e, gatewayConfig{MaxConnections: 1000})
	if err != nil {
		return result{}, err
	}
	defer gw.stop()
	ws, ready, err := startMutateLoad(ctx, e, gw, "rpc-loop", nil, e.mutateLoops, e.duration)
	if err != nil {
		return result{}, err
	}
	defer ws.stop()
	sum, use, err := runLoad(ctx, e, gw, ws, ready, 300*time.Millisecond)
	if err != nil {
		return result{}, err
	}
	slices.Sort(sum.Latency)
	lat := func(q float64) string { return fmtNanos(quantile(sum.Latency, q)) }
	wall := sum.Elapsed.Seconds()
	return result{
		Figure:    fmt.Sprintf("%.0f calls/s", float64(sum.OK)/wall),
		Reference: true,
		Notes: fmt.Sprintf("%d whoami calls in %.1f s with %d closed loops, %d errors; latency p50 %s, p99 %s; %s; %s (%s)",
			sum.OK, wall, e.mutateLoops, sum.Errors, lat(0.5), lat(0.99), use.perOp(sum.OK), use.cores(wall), e.placement()),
	}, nil
}

// runQuery installs the counter, creates e.queryContexts contexts and offers the
// paced whoami load's rate of query "get" (contexts round-robin), with its latency
// measured from the scheduled send times.
func runQuery(ctx context.Context, e *env) (result, error) {
	gw, err := startGateway(ctx, e, gatewayConfig{MaxConnections: 1000})
	if err != nil {
		return result{}, err
	}
	defer gw.stop()
	owner, contexts, err := setupCounter(ctx, e, gw, e.queryContexts)
	if err != nil {
		return result{}, err
	}
	defer owner.Close()
	return runPaced(ctx, e, gw, job{Scenario: "query", URL: gw.url(), Key: gw.owner, Contexts: contexts})
}

// setupCounter opens an owner session, installs counter.wasm (or e.counterApp, another
// app with increment and get answering {"value": N}) from e.appDir and creates
// n contexts of it; it queries each once (every counter must read 0), so that the
// load starts on warm instances.
func setupCounter(ctx context.Context, e *env, gw *gateway, n int) (*client.Client, []string, error) {
	app := "counter"
	if e.counterApp != "" {
		app = e.counterApp
	}
	wasm, err := os.ReadFile(filepath.Join(e.appDir, app+".wasm"))
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
	began := time.Now()
	var installed struct {
		AppID string `json:"appId"`
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Minute) // compiles the module
	err = owner.Call(ictx, "app.install", map[string]any{"wasm": base64.StdEncoding.EncodeToString(wasm), "name": app}, &installed)
	cancel()
	if err != nil {
		owner.Close()
		return nil, nil, fmt.Errorf("app.install: %w", err)
	}
	e.logf("installed %s.wasm (%d bytes) in %s", app, len(wasm), time.Since(began).Round(time.Millisecond))
	began = time.Now()
	contexts := make([]string, n)
	err = parallel(ctx, n, func(ctx context.Context, i int) error {
		var c struct {
			ContextID string `json:"contextId"`
		}
		if err := owner.Call(ctx, "context.create", map[string]any{"appId": installed.AppID}, &c); err != nil {
			return fmt.Errorf("context.create: %w", err)
		}
		contexts[i] = c.ContextID
		return nil
	})
	if err == nil {
		var counted int
		if counted, err = sumCounters(ctx, owner, contexts); err == nil && counted != 0 {
			err = fmt.Errorf("new counters sum to %d, want 0", counted)
		}
	}
	if err != nil {
		owner.Close()
		return nil, nil, err
	}
	e.logf("created and queried %d contexts in %s", n, time.Since(began).Round(time.Millisecond))
	return owner, contexts, nil
}

// startMutateLoad starts the load generators of loops closed loops of scenario
// (mutate over contexts, or rpc-loop) for duration, and waits until every loop's
// session is open. The caller stops them.
func startMutateLoad(ctx context.Context, e *env, gw *gateway, scenario string, contexts []string, loops int, duration time.Duration) (*workerSet, []report, error) {
	base := job{Scenario: scenario, URL: gw.url(), Key: gw.owner, Contexts: contexts, Sessions: loops, Duration: duration}
	ws, err := startWorkers(e, splitJob(base, min(mutateWorkers, loops)))
	if err != nil {
		return nil, nil, err
	}
	ready, err := ws.collect(ctx, "ready", time.Minute)
	if err == nil {
		if sum := total(ready); sum.OK != loops {
			err = fmt.Errorf("%d of %d sessions opened, first error: %s", sum.OK, loops, sum.FirstErr)
		}
	}
	if err != nil {
		ws.stop()
		return nil, nil, err
	}
	return ws, ready, nil
}

// sumCounters queries get on every context and adds up the values.
func sumCounters(ctx context.Context, owner *client.Client, contexts []string) (int, error) {
	var sum atomic.Int64
	err := parallel(ctx, len(contexts), func(ctx context.Context, i int) error {
		var r struct {
			Output struct {
				Value *int64 `json:"value"`
			} `json:"output"`
		}
		if err := owner.Call(ctx, "query", map[string]any{"contextId": contexts[i], "method": "get"}, &r); err != nil {
			return fmt.Errorf("query get: %w", err)
		}
		if r.Output.Value == nil {
			return fmt.Errorf("query get on %s: no value in the output", contexts[i])
		}
		sum.Add(*r.Output.Value)
		return nil
	})
	return int(sum.Load()), err
}

// parallel runs f(0) ... f(n-1), setupParallel at a time, each within 30 s, and
// returns the first error.
func parallel(ctx context.Context, n int, f func(context.Context, int) error) error {
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range min(n, setupParallel) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := f(cctx, i)
				cancel()
				if err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					next.Store(int64(n)) // stop the others
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

// mutateLoad is the worker side of mutate and rpc-loop: Sessions owner sessions, each
// running a closed loop of mutate "increment" (whoami for rpc-loop; one request
// outstanding) from the start time for Duration. Session k of worker w is loop
// g = k*Workers + w of L in all; its i-th mutate goes to context (g + i*L) mod
// len(Contexts). Like whoamiLoad it drives the sockets from one thread with epoll
// (epoll.go) to take little CPU: a reply is read and the loop's next request written
// in the same pass.
type mutateLoad struct {
	job   job
	conns []*websocket.Conn
	loops []*mutateLoop
}

// mutateLoop is one session's closed loop.
type mutateLoop struct {
	sock    *rawSocket
	g       int       // the loop's number among all workers' loops
	i       int       // the request outstanding (0-based); its id is i+1
	sent    time.Time // when it was sent
	latency []int64
	t       tally
}

func (l *mutateLoad) prepare(ctx context.Context) report {
	conns, rep := openJobSessions(ctx, l.job)
	l.conns = conns
	return rep
}

func (l *mutateLoad) run(ctx context.Context, start time.Time) report {
	socks := make([]*rawSocket, len(l.conns))
	for k, conn := range l.conns {
		sock, err := detach(conn)
		if err != nil {
			return report{Phase: "done", Errors: 1, FirstErr: err.Error()}
		}
		socks[k] = sock
		l.loops = append(l.loops, &mutateLoop{sock: sock, g: k*l.job.Workers + l.job.Index, latency: make([]int64, 0, 4096)})
	}
	var buf []byte
	loops := closedLoops{
		socks: socks,
		send: func(k int) error {
			m := l.loops[k]
			buf = l.request(buf[:0], m.g, m.i)
			m.sent = time.Now()
			return m.sock.writeText(buf)
		},
		receive: func(k int, now time.Time) (int, error) {
			m, replies := l.loops[k], 0
			err := m.sock.frames(func(msg []byte, now time.Time) {
				replies++
				switch id, isErr, ok := replyID(msg); {
				case !ok || id != m.i+1 || replies > 1:
					m.t.add(fmt.Errorf("%s: unexpected reply %.100s", l.job.Scenario, msg))
				case isErr:
					m.t.add(fmt.Errorf("%s: %.200s", l.job.Scenario, msg))
				default:
					m.t.add(nil)
					m.latency = append(m.latency, int64(now.Sub(m.sent)))
				}
			}, now)
			m.i += replies
			return replies, err
		},
		fail: func(k int, err error) { l.loops[k].t.add(fmt.Errorf("%s: %w", l.job.Scenario, err)) },
	}
	end := start.Add(l.job.Duration)
	if err := loops.run(ctx, start, end, end.Add(callTimeout)); err != nil {
		return report{Phase: "done", Errors: 1, FirstErr: err.Error()}
	}
	rs := make([]report, len(l.loops))
	for k, m := range l.loops {
		rs[k] = m.t.report("done")
		rs[k].Latency = m.latency
	}
	sum := total(rs)
	sum.Phase, sum.Elapsed = "done", time.Since(start)
	return sum
}

// request appends loop g's i-th request to buf.
func (l *mutateLoad) request(buf []byte, g, i int) []byte {
	if l.job.Scenario == "rpc-loop" {
		buf = append(buf, `{"jsonrpc":"2.0","method":"whoami","id":`...)
		buf = strconv.AppendInt(buf, int64(i+1), 10)
		return append(buf, '}')
	}
	loops := l.job.Sessions * l.job.Workers
	c := l.job.Contexts[(g+i*loops)%len(l.job.Contexts)]
	buf = append(buf, `{"jsonrpc":"2.0","method":"mutate","params":{"contextId":"`...)
	buf = append(buf, c...)
	buf = append(buf, `","method":"increment"},"id":`...)
	buf = strconv.AppendInt(buf, int64(i+1), 10)
	return append(buf, '}')
}

func (l *mutateLoad) close() {
	for _, m := range l.loops { // detached: the sockets are the loops'
		m.sock.close()
	}
	for _, c := range l.conns[len(l.loops):] {
		_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.Close()
	}
}

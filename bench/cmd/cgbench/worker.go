package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/circlegate/circlegate/client"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/gorilla/websocket"
)

// A worker is a child process of cgbench (the same binary with -worker) that generates
// one share of a scenario's load from its own loopback source address. It speaks JSON
// lines: the parent writes a job, the worker prepares and reports "ready", the parent
// writes a command, the worker runs and reports "done" and exits. A worker whose stdin
// closes (the parent died or gave up) stops at once; one that outlives workerLifetime
// stops by itself.

// maxSocketsPerWorker keeps every worker far below the 20,000 open-file limit.
const maxSocketsPerWorker = 5000

// workerLifetime bounds how long a worker may live, whatever happens.
const workerLifetime = 10 * time.Minute

// job is one worker's share of a scenario.
type job struct {
	Scenario string `json:"scenario"` // idle, handshake, whoami, mutate, rpc-loop, query, fanout-ws, fanout-sse or webhook
	URL      string `json:"url"`      // the tenant's WebSocket URL; webhook: the endpoint
	LocalIP  string `json:"localIP"`  // source address of every connection
	Index    int    `json:"index"`    // this worker's number, 0 to Workers-1
	Workers  int    `json:"workers"`
	// Sessions is how many authenticated sessions to open (idle, whoami).
	Sessions int `json:"sessions"`
	// Loops is how many goroutines dial at once (idle) or run handshakes (handshake).
	Loops int `json:"loops"`
	// Duration is how long to apply load (handshake, whoami).
	Duration time.Duration `json:"duration"`
	// Warmup is the first part of Duration whose latencies are left out (whoami,
	// query).
	Warmup time.Duration `json:"warmup,omitempty"`
	// Rate is the requests per second each session sends (whoami, query).
	Rate float64 `json:"rate"`
	// Key, when set, is the private key (hex) every session authenticates with: the
	// tenant owner's (mutate, query). Otherwise each session makes its own.
	Key string `json:"key,omitempty"`
	// Contexts are the context ids the requests go to, round-robin (mutate, query),
	// or the one context subscribed to (fanout).
	Contexts []string `json:"contexts,omitempty"`
	// Token authenticates SSE streams (fanout-sse).
	Token string `json:"token,omitempty"`
	// Secret is the tenant's Stripe signing secret (webhook).
	Secret string `json:"secret,omitempty"`
	// EventTypes are the event types the webhooks carry, round-robin (webhook).
	EventTypes []string `json:"eventTypes,omitempty"`
}

// command tells a ready worker when to run.
type command struct {
	Start time.Time `json:"start"`
}

// report is what a worker tells the parent after preparing and after running.
type report struct {
	Phase    string        `json:"phase"` // ready or done
	OK       int           `json:"ok"`    // sessions open, handshakes or requests done
	Errors   int           `json:"errors"`
	FirstErr string        `json:"firstErr,omitempty"`
	Elapsed  time.Duration `json:"elapsed"` // from start to the end of the last operation
	CPU      float64       `json:"cpu"`     // the worker's user + system CPU seconds so far
	// Latency holds, per whoami or query request, the time from its scheduled send to its reply;
	// Service the time from its actual send to its reply. Nanoseconds.
	Latency []int64 `json:"latency,omitempty"`
	Service []int64 `json:"service,omitempty"`
}

// load is one scenario's worker side.
type load interface {
	// prepare gets ready (opens sessions, makes keys) and reports how it went.
	prepare(ctx context.Context) report
	// run applies the load from start and reports the results.
	run(ctx context.Context, start time.Time) report
	// close releases whatever prepare opened.
	close()
}

func newLoad(j job) (load, error) {
	switch j.Scenario {
	case "idle":
		return &idleLoad{job: j}, nil
	case "handshake":
		return &handshakeLoad{job: j}, nil
	case "whoami", "query":
		return &whoamiLoad{job: j}, nil
	case "mutate", "rpc-loop":
		return &mutateLoad{job: j}, nil
	case "fanout-ws", "fanout-sse":
		return &fanoutLoad{job: j}, nil
	case "webhook":
		return &webhookLoad{job: j}, nil
	}
	return nil, fmt.Errorf("unknown scenario %q", j.Scenario)
}

// runWorker is the child mode: job and command from in, reports to out.
func runWorker(ctx context.Context, in io.Reader, out io.Writer) int {
	dec := json.NewDecoder(in)
	var j job
	if err := dec.Decode(&j); err != nil {
		fmt.Fprintf(os.Stderr, "cgbench worker: read job: %v\n", err)
		return 2
	}
	l, err := newLoad(j)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cgbench worker: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, workerLifetime)
	defer cancel()
	cmds := make(chan command, 1)
	go func() {
		var c command
		for dec.Decode(&c) == nil {
			cmds <- c
		}
		cancel() // stdin closed: the parent is gone or done with us
	}()
	defer l.close()
	enc := json.NewEncoder(out)
	send := func(r report) bool {
		r.CPU, _ = procCPU(os.Getpid())
		return enc.Encode(r) == nil
	}
	if !send(l.prepare(ctx)) {
		return 1
	}
	select {
	case c := <-cmds:
		if !send(l.run(ctx, c.Start)) {
			return 1
		}
		return 0
	case <-ctx.Done():
		return 1
	}
}

// dialer returns a WebSocket dialer whose connections leave from localIP.
func dialer(localIP string) *websocket.Dialer {
	nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: 10 * time.Second}
	return &websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
	}
}

// openSession dials url and authenticates with key, within 15 s.
func openSession(ctx context.Context, url string, d *websocket.Dialer, key *secp256k1.PrivateKey) (*client.Client, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, client.WithDialer(d))
	if err != nil {
		return nil, err
	}
	res, err := c.Authenticate(ctx, key)
	if err == nil && !res.Authenticated {
		err = errors.New("authenticate returned authenticated=false")
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// newKeys makes n client keys, one per concurrent loop: the gateway keeps at most four
// outstanding nonces per key, so keys are not shared between loops.
func newKeys(n int) ([]*secp256k1.PrivateKey, error) {
	keys := make([]*secp256k1.PrivateKey, n)
	for i := range keys {
		k, err := secp256k1.GeneratePrivateKey()
		if err != nil {
			return nil, err
		}
		keys[i] = k
	}
	return keys, nil
}

// warmUp opens and closes n sessions from the parent process.
func warmUp(ctx context.Context, url string, n int) error {
	keys, err := newKeys(1)
	if err != nil {
		return err
	}
	d := dialer("127.0.0.1")
	for range n {
		c, err := openSession(ctx, url, d, keys[0])
		if err != nil {
			return err
		}
		c.Close()
	}
	return nil
}

// total adds up the workers' reports.
func total(rs []report) report {
	var sum report
	for _, r := range rs {
		sum.OK += r.OK
		sum.Errors += r.Errors
		if sum.FirstErr == "" {
			sum.FirstErr = r.FirstErr
		}
		sum.Elapsed = max(sum.Elapsed, r.Elapsed)
		sum.CPU += r.CPU
		sum.Latency = append(sum.Latency, r.Latency...)
		sum.Service = append(sum.Service, r.Service...)
	}
	return sum
}

// tally counts successes and errors from many goroutines and keeps the first error.
type tally struct {
	mu       sync.Mutex
	ok, errs int
	first    string
}

func (t *tally) add(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		t.ok++
		return
	}
	t.errs++
	if t.first == "" {
		t.first = err.Error()
	}
}

func (t *tally) failures() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.errs
}

func (t *tally) report(phase string) report {
	t.mu.Lock()
	defer t.mu.Unlock()
	return report{Phase: phase, OK: t.ok, Errors: t.errs, FirstErr: t.first}
}

// workerSet is the parent's side of a scenario's workers.
type workerSet struct {
	procs []*workerProc
}

type workerProc struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	reports chan report // closed when stdout ends
	exited  chan struct{}
}

// splitJob divides base over n workers, each with its own source address 127.0.0.(2+i).
func splitJob(base job, n int) []job {
	jobs := make([]job, n)
	for i := range jobs {
		j := base
		j.Index, j.Workers = i, n
		j.LocalIP = fmt.Sprintf("127.0.0.%d", 2+i)
		j.Sessions = share(base.Sessions, n, i)
		j.Loops = max(1, share(base.Loops, n, i))
		jobs[i] = j
	}
	return jobs
}

// share returns the i-th of n near-equal parts of total.
func share(total, n, i int) int {
	s := total / n
	if i < total%n {
		s++
	}
	return s
}

// startWorkers starts one worker per job, running this same executable.
func startWorkers(e *env, jobs []job) (*workerSet, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	ws := &workerSet{}
	for _, j := range jobs {
		if j.Sessions > maxSocketsPerWorker || j.Loops > maxSocketsPerWorker {
			ws.stop()
			return nil, fmt.Errorf("worker %d would hold more than %d sockets", j.Index, maxSocketsPerWorker)
		}
		p, err := startWorker(exe, e.loadCPUs, j)
		if err != nil {
			ws.stop()
			return nil, err
		}
		ws.procs = append(ws.procs, p)
	}
	return ws, nil
}

func startWorker(exe, cpus string, j job) (*workerProc, error) {
	cmd := childCommand(cpus, exe, "-worker")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	p := &workerProc{cmd: cmd, stdin: stdin, reports: make(chan report, 2), exited: make(chan struct{})}
	go p.readReports(stdout)
	if err := json.NewEncoder(stdin).Encode(j); err != nil {
		p.stop()
		return nil, fmt.Errorf("send job to worker: %w", err)
	}
	return p, nil
}

func (p *workerProc) readReports(stdout io.Reader) {
	defer close(p.exited)
	defer func() { _ = p.cmd.Wait() }()
	defer close(p.reports)
	dec := json.NewDecoder(stdout)
	for {
		var r report
		if dec.Decode(&r) != nil {
			_, _ = io.Copy(io.Discard, stdout) // never leave the worker blocked on a write
			return
		}
		p.reports <- r
	}
}

// collect waits up to limit for one report of the given phase from every worker.
func (ws *workerSet) collect(ctx context.Context, phase string, limit time.Duration) ([]report, error) {
	timeout := time.After(limit)
	out := make([]report, 0, len(ws.procs))
	for i, p := range ws.procs {
		select {
		case r, ok := <-p.reports:
			if !ok {
				return nil, fmt.Errorf("worker %d exited before reporting %s", i, phase)
			}
			if r.Phase != phase {
				return nil, fmt.Errorf("worker %d reported %q, want %q", i, r.Phase, phase)
			}
			out = append(out, r)
		case <-timeout:
			return nil, fmt.Errorf("workers not %s after %s", phase, limit)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, nil
}

// send writes c to every worker.
func (ws *workerSet) send(c command) error {
	for i, p := range ws.procs {
		if err := json.NewEncoder(p.stdin).Encode(c); err != nil {
			return fmt.Errorf("worker %d: %w", i, err)
		}
	}
	return nil
}

// stop closes every worker's stdin, which makes it stop, and kills those still running
// after 15 s.
func (ws *workerSet) stop() {
	for _, p := range ws.procs {
		_ = p.stdin.Close()
	}
	for _, p := range ws.procs {
		p.stop()
	}
}

func (p *workerProc) stop() {
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// runLoad starts the prepared workers after lead, waits for their reports and returns
// them summed with the gateway's resource use over the run; too many failed operations
// are an error.
func runLoad(ctx context.Context, e *env, gw *gateway, ws *workerSet, ready []report, lead time.Duration) (report, usage, error) {
	meter, err := startMeter(ctx, gw)
	if err != nil {
		return report{}, usage{}, err
	}
	if err := ws.send(command{Start: time.Now().Add(lead)}); err != nil {
		return report{}, usage{}, err
	}
	done, err := ws.collect(ctx, "done", e.duration+time.Minute)
	if err != nil {
		return report{}, usage{}, err
	}
	sum := total(done)
	use, err := meter.stop(ctx, sum.CPU-total(ready).CPU)
	if err != nil {
		return report{}, usage{}, err
	}
	return sum, use, errorRate(sum)
}

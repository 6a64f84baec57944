// Command cgbench is the load and benchmark harness of the circlegate gateway core. It
// starts a gateway binary as a subprocess on a free loopback port, spreads client
// connections over load-generator child processes (itself, re-executed with -worker,
// each bound to its own source address 127.0.0.2, 127.0.0.3, ...) and runs:
//
//	idle       19,000 authenticated idle sessions: gateway RSS and goroutines per session
//	handshake  dial, fetch_nonce, authenticate, close in 64 loops: handshakes per gateway CPU-second
//	whoami     100 sessions, 10,000 req/s paced open loop: latency from the scheduled send
//	mutate     counter app on 1,000 contexts, 64 closed loops of mutate: durable mutations/s
//	rpc-loop   mutate's sessions and loops calling whoami instead: what the request path alone
//	           does, for reference (no app, queue or commit)
//	query      counter app on 100 contexts, 100 sessions, 10,000 query/s paced open loop
//	fanout     10,000 WebSocket subscribers of one context, 100 mutations/s: deliveries/s and latency
//	fanout-sse the same with SSE subscribers
//	webhook    ledger app on 16 contexts, 64 keep-alive HTTP clients posting signed Stripe events: verified webhooks/s
//	fleet-mutate   redis-server, 1 gateway (accept only), 2 worker processes; 256 closed loops of mutate: mutations/s, p50, p99
//	fleet-failover the same fleet under load; a worker killed with SIGKILL 3 times: time until the jobs it held completed elsewhere
//
// It prints a Markdown table on stdout, progress on stderr, and exits non-zero only
// when the harness itself fails; a missed target is a "miss" row.
//
// Usage:
//
//	go build -o bin/circlegate ./cmd/circlegate
//	make apps    # bin/apps/counter.wasm and ledger.wasm, for mutate, query and webhook
//	go run ./bench/cmd/cgbench [-gateway bin/circlegate] [-app-dir bin/apps] [-scenarios idle,handshake,whoami,mutate,query,webhook] [-quick] [-pin]
//
// docs/benchmarks.md describes the scenarios and the measured figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// env is what every scenario gets: the options and a progress log.
type env struct {
	gateway            string
	idleSessions       int
	idleSit            time.Duration // how long sessions sit idle before RSS is sampled
	handshakeLoops     int
	whoamiRate         float64       // requests per second, all sessions together
	duration           time.Duration // of the handshake, whoami, mutate and query loads
	warmup             time.Duration // of the paced loads (whoami, query), before the measured duration
	appDir             string        // where counter.wasm is
	mutateContexts     int           // contexts the mutate loops go round
	mutateLoops        int           // concurrent mutate loops, one session each
	queryContexts      int           // contexts the query load goes round
	fanoutSubscribers  int           // subscribers of the fan-out scenarios
	eventWriteInterval time.Duration // the gateway's event_write_interval, if set
	webhookContexts    int           // ledger contexts (one route each) the webhook load goes round
	webhookLoops       int           // concurrent webhook HTTP clients, one connection each
	fleetLoops         int           // closed mutate loops of fleet-mutate
	failoverKills      int           // worker kills of fleet-failover
	fleetApp           string        // the counter app of the fleet scenarios: counter or watcounter
	counterApp         string        // the counter app setupCounter installs; empty: counter
	// gatewayCPUs and loadCPUs, when set, are the CPU lists (taskset -c) the gateway
	// and the load generators are confined to.
	gatewayCPUs, loadCPUs string
	log                   io.Writer
}

// placement says where the processes ran.
func (e *env) placement() string {
	if e.gatewayCPUs == "" {
		return "gateway and load generators share all CPUs"
	}
	return "gateway on CPU " + e.gatewayCPUs + ", load generators on CPU " + e.loadCPUs
}

func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.log, "cgbench: "+format+"\n", args...)
}

// result is one row of the final table. A scenario fills Figure, Pass and Notes.
type result struct {
	Scenario, Figure, Target string
	Pass                     bool
	// Reference marks a figure measured for comparison, under no target of its own
	// or away from its target's setting: it is neither a pass nor a miss.
	Reference bool
	Err       error
	Notes     string
}

type scenario struct {
	name, target string
	run          func(context.Context, *env) (result, error)
}

var scenarios = []scenario{
	{"idle", "<= 12 KiB/session", runIdle},
	{"handshake", ">= 4000 handshakes/s per core", runHandshake},
	{"whoami", "p99 <= 1 ms", runWhoami},
	{"mutate", ">= 20000 mutations/s", runMutate},
	{"rpc-loop", "none: mutate's request path alone", runRPCLoop},
	{"query", "p99 <= 1 ms", runQuery},
	{"fanout", ">= 500000 deliveries/s, p99 <= 100 ms", runFanout},
	{"fanout-sse", ">= 500000 deliveries/s, p99 <= 100 ms", runFanoutSSE},
	{"webhook", ">= 5000 webhooks/s", runWebhook},
	{"fleet-mutate", ">= 12000 mutations/s", runFleetMutate},
	{"fleet-failover", "<= 5 s", runFleetFailover},
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && args[0] == "-worker" { // the hidden child mode
		return runWorker(ctx, os.Stdin, stdout)
	}
	e, selected, err := parseFlags(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "cgbench: %v\n", err)
		}
		return 2
	}
	var results []result
	failed := false
	for _, s := range selected {
		e.logf("%s: running", s.name)
		began := time.Now()
		r, err := s.run(ctx, e)
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = errors.New("interrupted")
		}
		r.Scenario, r.Target, r.Err = s.name, s.target, err
		if err != nil {
			failed = true
			e.logf("%s: %v", s.name, err)
		}
		e.logf("%s: finished in %s", s.name, time.Since(began).Round(time.Second))
		results = append(results, r)
		if ctx.Err() != nil {
			break
		}
	}
	printTable(stdout, results)
	if failed {
		return 1
	}
	return 0
}

func parseFlags(args []string, stderr io.Writer) (*env, []scenario, error) {
	fs := flag.NewFlagSet("cgbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	e := &env{log: stderr, duration: 10 * time.Second, idleSit: 10 * time.Second, mutateContexts: 1000, mutateLoops: mutateTargetLoops, queryContexts: 100, fleetLoops: 256, failoverKills: 3,
		fanoutSubscribers: fanoutSubscribers, webhookContexts: 64, webhookLoops: 64}
	fs.StringVar(&e.gateway, "gateway", "bin/circlegate", "gateway binary to start")
	fs.StringVar(&e.appDir, "app-dir", "bin/apps", "directory holding counter.wasm and ledger.wasm (make apps), for mutate, query, fanout and webhook")
	names := fs.String("scenarios", scenarioNames(), "comma-separated scenarios to run")
	fs.IntVar(&e.fleetLoops, "fleet-loops", 256, "closed mutate loops of fleet-mutate")
	fs.IntVar(&e.mutateLoops, "mutate-loops", mutateTargetLoops, "closed loops of mutate and rpc-loop (mutate's target is set for 64)")
	fs.IntVar(&e.failoverKills, "kills", 3, "worker kills of fleet-failover")
	fleetApp := fs.String("fleet-app", "counter", "counter app of the fleet scenarios: counter (Go) or watcounter (WAT)")
	quick := fs.Bool("quick", false, "3 s of handshake, whoami, mutate, rpc-loop, query, fanout and webhook load instead of 10 s")
	fs.IntVar(&e.webhookLoops, "webhook-clients", 64, "concurrent webhook HTTP clients")
	fs.IntVar(&e.webhookContexts, "webhook-contexts", 64, "ledger contexts (one route each) for webhook")
	fs.IntVar(&e.idleSessions, "sessions", 19000, "idle sessions to open")
	fs.IntVar(&e.handshakeLoops, "loops", 64, "concurrent handshake loops")
	fs.IntVar(&e.fanoutSubscribers, "subscribers", fanoutSubscribers, "subscribers of the fan-out scenarios")
	fs.DurationVar(&e.eventWriteInterval, "event-write-interval", 0, "the gateway's [sessions] event_write_interval in the fan-out scenarios (0: its default)")
	fs.Float64Var(&e.whoamiRate, "rate", 10000, "whoami and query requests per second offered, all sessions together")
	fs.DurationVar(&e.warmup, "warmup", 0, "whoami and query: offer the load this long before the measured duration, leaving its latencies out")
	pin := fs.Bool("pin", false, "run the gateway on CPU 0 and the load generators on the other CPUs (needs taskset)")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if *quick {
		e.duration = 3 * time.Second
	}
	if e.warmup < 0 {
		return nil, nil, fmt.Errorf("-warmup %s: want 0 or more", e.warmup)
	}
	if e.mutateLoops < 1 {
		return nil, nil, fmt.Errorf("-mutate-loops %d: want at least 1", e.mutateLoops)
	}
	if *pin {
		n := runtime.NumCPU()
		if n < 2 {
			return nil, nil, errors.New("-pin needs at least 2 CPUs")
		}
		e.gatewayCPUs, e.loadCPUs = "0", fmt.Sprintf("1-%d", n-1)
		if n == 2 {
			e.loadCPUs = "1"
		}
	}
	if *fleetApp != "counter" && *fleetApp != "watcounter" {
		return nil, nil, fmt.Errorf("-fleet-app %q: want counter or watcounter", *fleetApp)
	}
	e.fleetApp = *fleetApp
	selected, err := selectScenarios(*names)
	return e, selected, err
}

// scenarioNames lists every scenario's name, comma-separated, in running order.
func scenarioNames() string {
	names := make([]string, len(scenarios))
	for i, s := range scenarios {
		names[i] = s.name
	}
	return strings.Join(names, ",")
}

func selectScenarios(list string) ([]scenario, error) {
	var out []scenario
next:
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		for _, s := range scenarios {
			if s.name == name {
				out = append(out, s)
				continue next
			}
		}
		return nil, fmt.Errorf("unknown scenario %q (have %s)", name, scenarioNames())
	}
	return out, nil
}

func printTable(w io.Writer, results []result) {
	fmt.Fprintf(w, "Machine: %d CPUs (%s), %s, %s/%s\n\n", runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintln(w, "| scenario | figure | target | result | notes |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range results {
		verdict, notes := "pass", r.Notes
		switch {
		case r.Err != nil:
			verdict, r.Figure, notes = "error", "-", strings.ReplaceAll(r.Err.Error(), "\n", " ")
		case r.Reference:
			verdict = "reference"
		case !r.Pass:
			verdict = "miss"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", r.Scenario, r.Figure, r.Target, verdict, strings.ReplaceAll(notes, "|", `\|`))
	}
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

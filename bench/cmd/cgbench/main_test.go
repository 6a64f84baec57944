package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the load-generator child: the scenarios
// re-execute os.Executable() with -worker.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == "-worker" {
		os.Exit(runWorker(context.Background(), os.Stdin, os.Stdout))
	}
	os.Exit(m.Run())
}

func TestQuantile(t *testing.T) {
	sorted := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		q    float64
		want int64
	}{{0, 1}, {0.5, 5}, {0.9, 9}, {0.99, 10}, {1, 10}} {
		if got := quantile(sorted, tc.q); got != tc.want {
			t.Errorf("quantile(%v) = %d, want %d", tc.q, got, tc.want)
		}
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("quantile of nothing = %d, want 0", got)
	}
}

func TestSplitJob(t *testing.T) {
	jobs := splitJob(job{Sessions: 19000, Loops: 64}, 4)
	var sessions, loops int
	for i, j := range jobs {
		sessions += j.Sessions
		loops += j.Loops
		if want := "127.0.0." + string(rune('2'+i)); j.LocalIP != want {
			t.Errorf("job %d from %s, want %s", i, j.LocalIP, want)
		}
		if j.Sessions > maxSocketsPerWorker {
			t.Errorf("job %d holds %d sessions", i, j.Sessions)
		}
	}
	if sessions != 19000 || loops != 64 {
		t.Errorf("split into %d sessions and %d loops, want 19000 and 64", sessions, loops)
	}
}

func TestProcCounters(t *testing.T) {
	if rss, err := procRSS(os.Getpid()); err != nil || rss <= 0 {
		t.Errorf("procRSS = %d, %v", rss, err)
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Errorf("procCPU: %v", err)
	}
	if busy, err := machineCPU(); err != nil || busy <= 0 {
		t.Errorf("machineCPU = %v, %v", busy, err)
	}
}

// TestScenariosSmoke runs every scenario, scaled down, against a gateway built from
// this module, and checks that each produces a figure without a harness error.
func TestScenariosSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and starts the gateway")
	}
	bin := filepath.Join(t.TempDir(), "circlegate")
	build := exec.Command("go", "build", "-o", bin, "github.com/circlegate/circlegate/cmd/circlegate")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build gateway: %v\n%s", err, out)
	}
	apps := t.TempDir()
	for _, app := range []string{"counter", "ledger"} {
		wasm := exec.Command("go", "build", "-buildmode=c-shared", "-o", filepath.Join(apps, app+".wasm"), "github.com/circlegate/circlegate/examples/apps/"+app)
		wasm.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if out, err := wasm.CombinedOutput(); err != nil {
			t.Fatalf("build %s app: %v\n%s", app, err, out)
		}
	}
	e := &env{
		gateway: bin, idleSessions: 300, idleSit: time.Second, handshakeLoops: 8,
		whoamiRate: 1000, duration: time.Second, log: io.Discard,
		appDir: apps, mutateContexts: 20, mutateLoops: 8, queryContexts: 10,
		webhookContexts: 3, webhookLoops: 8, fleetLoops: 8, failoverKills: 1,
	}
	for _, s := range scenarios {
		t.Run(s.name, func(t *testing.T) {
			r, err := s.run(context.Background(), e)
			if err != nil {
				t.Fatal(err)
			}
			if r.Figure == "" || r.Notes == "" {
				t.Errorf("empty result: %+v", r)
			}
			// rpc-loop has no target; mutate runs 8 loops here, not its target's 64.
			if want := s.name == "rpc-loop" || s.name == "mutate"; r.Reference != want {
				t.Errorf("%s: Reference = %v, want %v", s.name, r.Reference, want)
			}
			if s.name == "rpc-loop" && strings.HasPrefix(r.Figure, "0 ") {
				t.Errorf("rpc-loop made no calls: %+v", r)
			}
		})
	}
	if procs := childProcesses(t); len(procs) > 0 {
		t.Errorf("processes left behind: %v", procs)
	}
}

// childProcesses lists the processes whose parent is this one.
func childProcesses(t *testing.T) []string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	self := strconv.Itoa(os.Getpid())
	var out []string
	for _, de := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", de.Name(), "stat"))
		if err != nil {
			continue
		}
		// The parent pid is the second field after the parenthesized command name.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 1 && f[1] == self {
			out = append(out, de.Name()+" "+f[0])
		}
	}
	return out
}

func TestDescribeRounds(t *testing.T) {
	before := map[string]float64{roundMetrics[0]: 10, roundMetrics[1]: 1, roundMetrics[2]: 0.5, roundMetrics[3]: 0.5}
	after := map[string]float64{
		roundMetrics[0]: 110, roundMetrics[1]: 6, roundMetrics[2]: 0.5 + 5*0.0004, roundMetrics[3]: 0.5 + 5*0.0012,
		roundMetrics[4]: 0.4, roundMetrics[5]: 100,
	}
	want := "5 commit rounds of 20.0 jobs, each executed in 0.40 ms and committed in 1.20 ms on average; " +
		"a mutation took 4.00 ms on average from its submission to its commit"
	if got := describeRounds(before, after); got != want {
		t.Errorf("describeRounds = %q, want %q", got, want)
	}
	if got := describeRounds(before, before); got != "no commit rounds" {
		t.Errorf("describeRounds of no change = %q", got)
	}
}

func TestPrintTableVerdicts(t *testing.T) {
	var b strings.Builder
	printTable(&b, []result{
		{Scenario: "a", Figure: "1/s", Target: ">= 1/s", Pass: true},
		{Scenario: "b", Figure: "0/s", Target: ">= 1/s"},
		{Scenario: "c", Figure: "5/s", Target: "none", Pass: true, Reference: true},
		{Scenario: "d", Figure: "5/s", Target: ">= 1/s", Err: errors.New("broke\nhere")},
	})
	for _, want := range []string{
		"| a | 1/s | >= 1/s | pass |", "| b | 0/s | >= 1/s | miss |",
		"| c | 5/s | none | reference |", "| d | - | >= 1/s | error | broke here |",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

func TestMutateLoopsFlag(t *testing.T) {
	e, sel, err := parseFlags([]string{"-mutate-loops", "256", "-scenarios", "rpc-loop,mutate"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if e.mutateLoops != 256 || len(sel) != 2 || sel[0].name != "rpc-loop" {
		t.Errorf("mutateLoops %d, scenarios %v", e.mutateLoops, sel)
	}
	if _, _, err := parseFlags([]string{"-mutate-loops", "0"}, io.Discard); err == nil {
		t.Error("-mutate-loops 0 accepted")
	}
	if _, _, err := parseFlags([]string{"-scenarios", "nope"}, io.Discard); err == nil || !strings.Contains(err.Error(), "rpc-loop") {
		t.Errorf("unknown scenario: %v, want the list of names", err)
	}
}

// TestWarmupLeftOut: replies to requests scheduled in the warm-up count as answered
// but keep no latency; the others keep both latencies.
func TestWarmupLeftOut(t *testing.T) {
	start := time.Now()
	s := &whoamiSession{}
	s.plan(start, start.Add(10*time.Millisecond), time.Millisecond) // requests 1 to 10
	s.measure = start.Add(4 * time.Millisecond)                     // 1 to 4 are warm-up
	for i := range s.scheduled {
		s.sent[i] = s.scheduled[i].UnixNano()
		s.reply([]byte(`{"jsonrpc":"2.0","id":`+strconv.Itoa(i+1)+`,"result":{}}`), s.scheduled[i].Add(time.Millisecond))
	}
	if s.got != 10 || s.t.failures() != 0 {
		t.Fatalf("%d replies read, %d failures; want 10 and 0", s.got, s.t.failures())
	}
	if len(s.latency) != 6 || len(s.service) != 6 {
		t.Fatalf("%d latencies and %d service times kept, want the 6 after the warm-up", len(s.latency), len(s.service))
	}
	if s.latency[0] != int64(time.Millisecond) {
		t.Fatalf("first latency kept %v, want 1ms", time.Duration(s.latency[0]))
	}
}

func TestWarmupFlag(t *testing.T) {
	if _, _, err := parseFlags([]string{"-warmup", "-1s"}, io.Discard); err == nil {
		t.Fatal("-warmup -1s: no error")
	}
	e, _, err := parseFlags([]string{"-warmup", "2s", "-scenarios", "query"}, io.Discard)
	if err != nil || e.warmup != 2*time.Second {
		t.Fatalf("-warmup 2s: %v, %v", e, err)
	}
}

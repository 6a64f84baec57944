package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fleet scenarios run circlegate as a fleet on this machine: a redis-server
// (appendonly yes, appendfsync everysec, rdbcompression no: what docs/operations.md recommends), one
// gateway that only accepts (`serve --workers 0`, load generators connect to it) and
// fleetWorkers worker processes (`circlegate worker`).

// fleetWorkers is the number of worker processes of the fleet scenarios.
const fleetWorkers = 2

// fleet is a running test fleet.
type fleet struct {
	e       *env
	dir     string
	redis   *exec.Cmd
	rdb     *redis.Client
	url     string
	gw      *gateway
	conf    string
	workers []*fleetWorker
	gone    []*fleetWorker // killed
}

type fleetWorker struct {
	cmd    *exec.Cmd
	node   string
	exited chan struct{}
}

var workerRunning = regexp.MustCompile(`msg="worker running" node=(\w+)`)

// startFleet starts Redis, the gateway and the workers; stop ends them all.
func startFleet(ctx context.Context, e *env) (*fleet, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return nil, errors.New("redis-server not found in PATH (make deps installs it)")
	}
	dir, err := os.MkdirTemp("", "cgbench-fleet-")
	if err != nil {
		return nil, err
	}
	f := &fleet{e: e, dir: dir}
	if err := f.startRedis(ctx); err != nil {
		f.stop()
		return nil, err
	}
	f.gw, err = startGateway(ctx, e, gatewayConfig{MaxConnections: 1000, Redis: f.url, Workers: -1})
	if err != nil {
		f.stop()
		return nil, err
	}
	f.conf = filepath.Join(f.gw.dir, "circlegate.toml")
	for range fleetWorkers {
		if _, err := f.startWorker(ctx); err != nil {
			f.stop()
			return nil, err
		}
	}
	return f, nil
}

func (f *fleet) startRedis(ctx context.Context) error {
	addr, err := freePort()
	if err != nil {
		return err
	}
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	f.redis = childCommand("", "redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", f.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "everysec", "--rdbcompression", "no", "--daemonize", "no",
		"--logfile", filepath.Join(f.dir, "redis.log"))
	if err := f.redis.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	f.url = "redis://" + addr + "/0"
	f.rdb = redis.NewClient(&redis.Options{Addr: addr, DisableIdentity: true})
	deadline := time.Now().Add(10 * time.Second)
	for f.rdb.Ping(ctx).Err() != nil {
		if time.Now().After(deadline) {
			return errors.New("redis-server did not answer within 10s")
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// startWorker starts one `circlegate worker` (2 concurrent batches) and waits until it
// runs.
func (f *fleet) startWorker(ctx context.Context) (*fleetWorker, error) {
	logPath := filepath.Join(f.dir, fmt.Sprintf("worker-%d.log", len(f.workers)+len(f.gone)))
	w := &fleetWorker{exited: make(chan struct{})}
	// The gateway's data dir holds only the compiled-module cache in a fleet: sharing it
	// lets a worker load the counter compiled at install instead of compiling it again.
	w.cmd = childCommand("", f.e.gateway, "worker", "--config", f.conf, "--data", filepath.Join(f.gw.dir, "data"),
		"--concurrency", "2", "--log-level", "info")
	pipe, err := w.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	node := make(chan string, 1)
	go func() {
		defer close(w.exited)
		logFile, _ := os.Create(logPath)
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			if logFile != nil {
				fmt.Fprintln(logFile, sc.Text())
			}
			if m := workerRunning.FindStringSubmatch(sc.Text()); m != nil {
				node <- m[1]
			}
		}
		if logFile != nil {
			logFile.Close()
		}
		_ = w.cmd.Wait()
	}()
	select {
	case w.node = <-node:
	case <-w.exited:
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("worker exited during start:\n%s", log)
	case <-time.After(30 * time.Second):
		_ = w.cmd.Process.Kill()
		return nil, errors.New("worker did not start within 30s")
	case <-ctx.Done():
		_ = w.cmd.Process.Kill()
		return nil, ctx.Err()
	}
	f.workers = append(f.workers, w)
	return w, nil
}

// kill kills a worker with SIGKILL and returns when it is gone.
func (w *fleetWorker) kill() {
	_ = w.cmd.Process.Signal(syscall.SIGKILL)
	<-w.exited
}

// stop ends the workers, the gateway and Redis, and removes the directory.
func (f *fleet) stop() {
	for _, w := range f.workers {
		_ = w.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-w.exited:
		case <-time.After(10 * time.Second):
			w.kill()
		}
	}
	if f.gw != nil {
		f.gw.stop()
	}
	if f.rdb != nil {
		_ = f.rdb.Close()
	}
	if f.redis != nil && f.redis.Process != nil {
		_ = f.redis.Process.Kill()
		_ = f.redis.Wait()
	}
	_ = os.RemoveAll(f.dir)
}

// cpu returns the CPU seconds used so far by the workers and by Redis.
func (f *fleet) cpu() (workers, rds float64, err error) {
	for _, w := range f.workers {
		c, err := procCPU(w.cmd.Process.Pid)
		if err != nil {
			return 0, 0, err
		}
		workers += c
	}
	rds, err = procCPU(f.redis.Process.Pid)
	return workers, rds, err
}

// runFleetMutate: e.fleetLoops closed loops of mutate "increment" over
// e.mutateContexts counters through the fleet, for e.duration: durable mutations per
// second with p50 and p99, the counters checked against the acknowledgements, and the
// CPU each process took per mutation.
func runFleetMutate(ctx context.Context, e *env) (result, error) {
	f, err := startFleet(ctx, e)
	if err != nil {
		return result{}, err
	}
	defer f.stop()
	e.counterApp = e.fleetApp
	defer func() { e.counterApp = "" }()
	owner, contexts, err := setupCounter(ctx, e, f.gw, e.mutateContexts)
	if err != nil {
		return result{}, err
	}
	defer owner.Close()
	warm, err := warmWorkers(ctx, owner, contexts)
	if err != nil {
		return result{}, err
	}
	ws, ready, err := startMutateLoad(ctx, e, f.gw, "mutate", contexts, e.fleetLoops, e.duration)
	if err != nil {
		return result{}, err
	}
	defer ws.stop()
	w0, r0, err := f.cpu()
	if err != nil {
		return result{}, err
	}
	sum, use, err := runLoad(ctx, e, f.gw, ws, ready, 300*time.Millisecond)
	if err != nil {
		return result{}, err
	}
	w1, r1, err := f.cpu()
	if err != nil {
		return result{}, err
	}
	counted, err := sumCounters(ctx, owner, contexts)
	if err != nil {
		return result{}, fmt.Errorf("check counters: %w", err)
	}
	counted -= warm
	if counted < sum.OK || counted > sum.OK+sum.Errors {
		return result{}, fmt.Errorf("HARNESS FAILURE: counters sum to %d, but %d mutations were acknowledged (%d failed)", counted, sum.OK, sum.Errors)
	}
	slices.Sort(sum.Latency)
	lat := func(q float64) string { return fmtNanos(quantile(sum.Latency, q)) }
	wall := sum.Elapsed.Seconds()
	rate := float64(sum.OK) / wall
	per := func(cpu float64) float64 { return cpu / float64(max(sum.OK, 1)) * 1e6 }
	return result{
		Figure: fmt.Sprintf("%.0f mutations/s, p50 %s, p99 %s", rate, lat(0.5), lat(0.99)),
		Pass:   rate >= 12000,
		Notes: fmt.Sprintf("%s increment: %d durable mutations in %.1f s through 1 gateway (accept only) and %d worker processes on Redis (appendfsync everysec, rdbcompression no), %d closed loops over %d contexts, %d errors; latency p99.9 %s, max %s; counters sum to %d; CPU per mutation: gateway %.0f µs, workers %.0f µs, redis %.0f µs, load generators %.0f µs; cores: gateway %.2f, workers %.2f, redis %.2f, load generators %.2f, other processes %.2f%s",
			e.fleetApp, sum.OK, wall, fleetWorkers, e.fleetLoops, len(contexts), sum.Errors, lat(0.999), lat(1), counted,
			per(use.gateway), per(w1-w0), per(r1-r0), per(use.load),
			use.gateway/wall, (w1-w0)/wall, (r1-r0)/wall, use.load/wall, max(0, use.other-(w1-w0)-(r1-r0))/wall, busy(use, w1-w0+r1-r0, wall)),
	}, nil
}

// warmWorkers increments up to 256 counters once, setupParallel at a time, so that both
// workers have loaded the app and made instances before the measured load; it
// returns how many increments it made.
func warmWorkers(ctx context.Context, owner interface {
	Call(ctx context.Context, method string, params, result any) error
}, contexts []string) (int, error) {
	n := min(256, len(contexts))
	err := parallel(ctx, n, func(ctx context.Context, i int) error {
		return owner.Call(ctx, "mutate", map[string]any{"contextId": contexts[i], "method": "increment"}, nil)
	})
	if err != nil {
		return 0, fmt.Errorf("warm-up mutate: %w", err)
	}
	return n, nil
}

// busy marks a run in which processes outside the fleet took more than 0.2 cores.
func busy(u usage, fleetCPU, wall float64) string {
	if (u.other-fleetCPU)/wall > 0.2 {
		return " (BUSY MACHINE: figures distorted)"
	}
	return ""
}

// runFleetFailover: under a steady mutate load, a worker is killed with SIGKILL,
// e.failoverKills times (a new worker replaces each). The figure is the time from a
// kill to the completion, on the other worker, of the last job the killed worker held
// (its pending entries in the stream at the kill), read from the jobs' records.
func runFleetFailover(ctx context.Context, e *env) (result, error) {
	f, err := startFleet(ctx, e)
	if err != nil {
		return result{}, err
	}
	defer f.stop()
	e.counterApp = e.fleetApp
	defer func() { e.counterApp = "" }()
	owner, contexts, err := setupCounter(ctx, e, f.gw, e.mutateContexts)
	if err != nil {
		return result{}, err
	}
	defer owner.Close()
	if _, err := warmWorkers(ctx, owner, contexts); err != nil {
		return result{}, err
	}
	loops := min(64, e.fleetLoops)
	span := time.Duration(e.failoverKills)*(e.duration/2+6*time.Second) + 2*time.Second
	ws, _, err := startMutateLoad(ctx, e, f.gw, "mutate", contexts, loops, span)
	if err != nil {
		return result{}, err
	}
	defer ws.stop()
	if err := ws.send(command{Start: time.Now().Add(300 * time.Millisecond)}); err != nil {
		return result{}, err
	}
	var worst []time.Duration // per kill
	var held []int
	for k := range e.failoverKills {
		if err := sleep(ctx, e.duration/2); err != nil {
			return result{}, err
		}
		victim := f.workers[k%len(f.workers)]
		victim.kill()
		killed := time.Now()
		f.gone = append(f.gone, victim)
		ids, err := f.pendingJobs(ctx, victim.node)
		if err != nil {
			return result{}, err
		}
		repl, err := f.startWorker(ctx) // the fleet keeps two workers
		if err != nil {
			return result{}, err
		}
		f.workers[k%len(f.workers)] = repl
		done, failed, err := f.waitFinished(ctx, ids, time.Minute)
		if err != nil {
			return result{}, err
		}
		if failed > 0 {
			return result{}, fmt.Errorf("HARNESS FAILURE: %d of the %d jobs the killed worker held did not complete (failed or dead)", failed, len(ids))
		}
		w := time.Duration(0)
		for _, at := range done {
			w = max(w, at.Sub(killed))
		}
		e.logf("fleet-failover: kill %d: worker %s held %d jobs; the last finished %s after the kill", k+1, victim.node, len(ids), w.Round(time.Millisecond))
		worst, held = append(worst, w), append(held, len(ids))
	}
	rs, err := ws.collect(ctx, "done", span+time.Minute)
	if err != nil {
		return result{}, err
	}
	sum := total(rs)
	if _, err := sumCounters(ctx, owner, contexts); err != nil {
		return result{}, err
	}
	slowest := slices.Max(worst)
	return result{
		Figure: fmt.Sprintf("%s from kill -9 to the last held job's completion (worst of %d kills)", slowest.Round(10*time.Millisecond), len(worst)),
		Pass:   slowest <= 5*time.Second,
		Notes: fmt.Sprintf("per kill: %s; jobs the killed worker held: %v; visibility timeout 3 s (execution.limits.timeout 2 s + 1 s), reclaim every 1.5 s; %d loops of mutate kept running (%d acknowledged, %d failed)",
			fmtDurations(worst), held, loops, sum.OK, sum.Errors),
	}, nil
}

func fmtDurations(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.Round(10 * time.Millisecond).String()
	}
	return strings.Join(s, ", ")
}

// pendingJobs returns the ids of the jobs pending on a worker's consumer.
func (f *fleet) pendingJobs(ctx context.Context, node string) ([]string, error) {
	const stream = "{cg:q}:jobs"
	ps, err := f.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: "workers", Start: "-", End: "+", Count: 100000, Consumer: node}).Result()
	if err != nil {
		return nil, fmt.Errorf("XPENDING: %w", err)
	}
	var ids []string
	for _, p := range ps {
		msgs, err := f.rdb.XRange(ctx, stream, p.ID, p.ID).Result()
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if id, ok := m.Values["id"].(string); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

// waitFinished polls the records of jobs until each finished and returns when, and
// how many of them did not finish done.
func (f *fleet) waitFinished(ctx context.Context, ids []string, limit time.Duration) ([]time.Time, int, error) {
	deadline := time.Now().Add(limit)
	done := make(map[string]time.Time, len(ids))
	failed := 0
	for len(done) < len(ids) {
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("%d of %d jobs of the killed worker did not finish within %s", len(ids)-len(done), len(ids), limit)
		}
		for _, id := range ids {
			if _, ok := done[id]; ok {
				continue
			}
			s, err := f.rdb.Get(ctx, "{cg:q}:job:"+id).Result()
			if err != nil {
				continue
			}
			var rec struct {
				Status     string `json:"status"`
				FinishedAt int64  `json:"finishedAt"`
			}
			if json.Unmarshal([]byte(s), &rec) == nil && rec.Status != "queued" {
				done[id] = time.UnixMilli(rec.FinishedAt)
				if rec.Status != "done" {
					failed++
				}
			}
		}
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return nil, 0, err
		}
	}
	out := make([]time.Time, 0, len(done))
	for _, t := range done {
		out = append(out, t)
	}
	return out, failed, nil
}

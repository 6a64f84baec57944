package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circlegate/circlegate/client"
)

// idleMetrics are the gateway metrics sampled before and after the sessions open.
var idleMetrics = []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "circlegate_ws_sessions"}

// runIdle opens e.idleSessions authenticated sessions, lets them sit idle and reports
// the gateway's resident memory and goroutines per session.
func runIdle(ctx context.Context, e *env) (result, error) {
	n := e.idleSessions
	gw, err := startGateway(ctx, e, gatewayConfig{MaxConnections: n + 500})
	if err != nil {
		return result{}, err
	}
	defer gw.stop()

	// Warm-up: a few sessions opened and closed again, so that the baseline already
	// holds the code, pools and maps that any session touches.
	if err := warmUp(ctx, gw.url(), 8); err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}
	if err := sleep(ctx, 2*time.Second); err != nil {
		return result{}, err
	}
	rss0, err := gw.minRSS(ctx, 5, 200*time.Millisecond)
	if err != nil {
		return result{}, err
	}
	m0, err := gw.metrics(ctx, idleMetrics...)
	if err != nil {
		return result{}, err
	}

	workers := max(4, (n+maxSocketsPerWorker-1)/maxSocketsPerWorker)
	ws, err := startWorkers(e, splitJob(job{Scenario: "idle", URL: gw.url(), Sessions: n, Loops: 64}, workers))
	if err != nil {
		return result{}, err
	}
	defer ws.stop()
	began := time.Now()
	ready, err := ws.collect(ctx, "ready", 5*time.Minute)
	if err != nil {
		return result{}, err
	}
	ramp := time.Since(began)
	if sum := total(ready); sum.OK != n {
		return result{}, fmt.Errorf("%d of %d sessions opened, %d errors, first: %s", sum.OK, n, sum.Errors, sum.FirstErr)
	}
	e.logf("idle: %d sessions authenticated in %s over %d workers; sitting idle %s", n, ramp.Round(time.Millisecond), workers, e.idleSit)
	if err := sleep(ctx, e.idleSit); err != nil {
		return result{}, err
	}
	rss1, err := gw.minRSS(ctx, 5, time.Second)
	if err != nil {
		return result{}, err
	}
	m1, err := gw.metrics(ctx, idleMetrics...)
	if err != nil {
		return result{}, err
	}
	if got := int(m1["circlegate_ws_sessions"] - m0["circlegate_ws_sessions"]); got != n {
		return result{}, fmt.Errorf("gateway reports %d sessions, want %d", got, n)
	}

	// Release the sessions; each worker first counts those still open.
	if err := ws.send(command{Start: time.Now()}); err != nil {
		return result{}, err
	}
	done, err := ws.collect(ctx, "done", 2*time.Minute)
	if err != nil {
		return result{}, err
	}
	if alive := total(done).OK; alive != n {
		return result{}, fmt.Errorf("%d of %d sessions were closed while idle", n-alive, n)
	}

	perSession := float64(rss1-rss0) / float64(n)
	perKiB := func(name string) float64 { return (m1[name] - m0[name]) / float64(n) / 1024 }
	return result{
		Figure: fmt.Sprintf("%.1f KiB/session", perSession),
		Pass:   perSession <= 12,
		Notes: fmt.Sprintf("%d sessions; RSS %d -> %d KiB; %.2f goroutines/session (%.0f -> %.0f); "+
			"of which heap in use %.1f KiB/session, goroutine stacks %.1f KiB/session; opened in %s (%.0f/s)",
			n, rss0, rss1, (m1["go_goroutines"]-m0["go_goroutines"])/float64(n), m0["go_goroutines"], m1["go_goroutines"],
			perKiB("go_memstats_heap_inuse_bytes"), perKiB("go_memstats_stack_inuse_bytes"),
			ramp.Round(100*time.Millisecond), float64(n)/ramp.Seconds()),
	}, nil
}

// idleLoad is the worker side: open Sessions authenticated sessions with Loops
// goroutines, hold them, and on the command count the ones still open and close all.
type idleLoad struct {
	job     job
	mu      sync.Mutex
	clients []*client.Client
}

func (l *idleLoad) prepare(ctx context.Context) report {
	keys, err := newKeys(l.job.Loops)
	if err != nil {
		return report{Phase: "ready", Errors: 1, FirstErr: err.Error()}
	}
	d := dialer(l.job.LocalIP)
	maxErrors := max(10, l.job.Sessions/100)
	var t tally
	var tickets atomic.Int64
	var wg sync.WaitGroup
	for _, key := range keys {
		wg.Go(func() {
			for tickets.Add(1) <= int64(l.job.Sessions) && ctx.Err() == nil {
				c, err := openSession(ctx, l.job.URL, d, key)
				t.add(err)
				if err != nil {
					if t.failures() > maxErrors {
						return
					}
					continue
				}
				l.mu.Lock()
				l.clients = append(l.clients, c)
				l.mu.Unlock()
			}
		})
	}
	wg.Wait()
	return t.report("ready")
}

func (l *idleLoad) run(context.Context, time.Time) report {
	l.mu.Lock()
	defer l.mu.Unlock()
	alive := 0
	for _, c := range l.clients {
		if c.Err() == nil {
			alive++
		}
	}
	return report{Phase: "done", OK: alive, Errors: len(l.clients) - alive}
}

// close closes the sessions, 64 at a time.
func (l *idleLoad) close() {
	l.mu.Lock()
	clients := l.clients
	l.clients = nil
	l.mu.Unlock()
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, c := range clients {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.Close()
		})
	}
	wg.Wait()
}

package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/circlegate/circlegate/client"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// handshakeWorkers spreads the handshake loops, and the TIME_WAIT sockets their
// closed connections leave, over four source addresses.
const handshakeWorkers = 4

// runHandshake runs e.handshakeLoops concurrent loops of full handshakes (dial,
// fetch_nonce, authenticate, close) for e.duration and reports handshakes per gateway
// CPU-second.
func runHandshake(ctx context.Context, e *env) (result, error) {
	gw, err := startGateway(ctx, e, gatewayConfig{MaxConnections: 1000})
	if err != nil {
		return result{}, err
	}
	defer gw.stop()
	if err := warmUp(ctx, gw.url(), 8); err != nil {
		return result{}, fmt.Errorf("warm-up: %w", err)
	}
	base := job{Scenario: "handshake", URL: gw.url(), Loops: e.handshakeLoops, Duration: e.duration}
	ws, err := startWorkers(e, splitJob(base, handshakeWorkers))
	if err != nil {
		return result{}, err
	}
	defer ws.stop()
	ready, err := ws.collect(ctx, "ready", 30*time.Second)
	if err != nil {
		return result{}, err
	}

	sum, use, err := runLoad(ctx, e, gw, ws, ready, 200*time.Millisecond)
	if err != nil {
		return result{}, err
	}
	wall := sum.Elapsed.Seconds()
	perCore := float64(sum.OK) / use.gateway
	return result{
		Figure: fmt.Sprintf("%.0f handshakes/s per core", perCore),
		Pass:   perCore >= 4000,
		Notes: fmt.Sprintf("%d handshakes in %.1f s = %.0f/s with %d loops, %d errors; %s; %s (%s; the load generators sign every nonce)",
			sum.OK, wall, float64(sum.OK)/wall, e.handshakeLoops, sum.Errors, use.perOp(sum.OK), use.cores(wall), e.placement()),
	}, nil
}

// errorRate fails a run in which more than 1% of the operations failed: its figures
// would describe a broken gateway or harness, not a slow one.
func errorRate(sum report) error {
	if sum.OK == 0 || sum.Errors*100 > sum.OK {
		return fmt.Errorf("%d operations, %d errors, first: %s", sum.OK, sum.Errors, sum.FirstErr)
	}
	return nil
}

// handshakeLoad is the worker side: Loops goroutines, each with its own key, doing
// handshakes back to back from the start time for Duration.
type handshakeLoad struct {
	job  job
	keys []*secp256k1.PrivateKey
}

func (l *handshakeLoad) prepare(context.Context) report {
	var err error
	if l.keys, err = newKeys(l.job.Loops); err != nil {
		return report{Phase: "ready", Errors: 1, FirstErr: err.Error()}
	}
	return report{Phase: "ready", OK: len(l.keys)}
}

func (l *handshakeLoad) run(ctx context.Context, start time.Time) report {
	if err := sleep(ctx, time.Until(start)); err != nil {
		return report{Phase: "done", Errors: 1, FirstErr: err.Error()}
	}
	end := start.Add(l.job.Duration)
	d := dialer(l.job.LocalIP)
	var t tally
	var wg sync.WaitGroup
	for _, key := range l.keys {
		wg.Go(func() {
			for time.Now().Before(end) && ctx.Err() == nil {
				c, err := openSession(ctx, l.job.URL, d, key)
				if err == nil {
					err = closeClient(c)
				}
				t.add(err)
				if err != nil {
					_ = sleep(ctx, 10*time.Millisecond) // do not spin on a failing gateway
				}
			}
		})
	}
	wg.Wait()
	r := t.report("done")
	r.Elapsed = time.Since(start)
	return r
}

func (l *handshakeLoad) close() {}

// closeClient closes c and reports an error only if the server had closed it first.
func closeClient(c *client.Client) error {
	err := c.Err()
	c.Close()
	return err
}

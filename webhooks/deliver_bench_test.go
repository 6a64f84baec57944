package webhooks_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/circlegate/circlegate/execution"
	"github.com/circlegate/circlegate/internal/embedtest"
	"github.com/circlegate/circlegate/internal/testapps"
	"github.com/circlegate/circlegate/tenant"
	"github.com/circlegate/circlegate/webhooks"
)

// BenchmarkDeliverStripe is the webhook path without HTTP: 64 callers run closed
// loops of Service.Deliver with signed Stripe events over 16 routes to ledger
// contexts, through the memory queue and the workers, committing to Pebble on disk,
// as the webhook scenario of cgbench does behind net/http. Besides ns/op it reports
// the process's CPU time per delivery, steadier than ns/op on a shared machine.
func BenchmarkDeliverStripe(b *testing.B) {
	const (
		routes  = 16
		callers = 64
		secret  = "whsec_bench"
		tk      = "02a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	)
	ctx := context.Background()
	svc, st, reg := embedtest.Service(b)
	tenants := tenant.NewRegistry()
	t, err := tenants.Add(tenant.Tenant{PubKey: tk})
	if err != nil {
		b.Fatal(err)
	}
	hooks, err := webhooks.NewService(webhooks.Config{}, tenants, st, svc, nil, reg)
	if err != nil {
		b.Fatal(err)
	}
	if err := hooks.AddConfigSecret(t.PubKey, webhooks.Stripe, "", secret); err != nil {
		b.Fatal(err)
	}
	owner := execution.Caller{PubKey: t.PubKey, Owner: true}
	app, err := svc.InstallApp(ctx, t.PubKey, owner, testapps.Build(b, "ledger"), "ledger", "")
	if err != nil {
		b.Fatal(err)
	}
	for i := range routes {
		c, err := svc.CreateContext(ctx, t.PubKey, owner, app.ID, execution.CreateOptions{})
		if err != nil {
			b.Fatal(err)
		}
		r := webhooks.Route{Provider: webhooks.Stripe, EventType: "bench." + strconv.Itoa(i), ContextID: c.ID, Method: "record"}
		if _, err := hooks.SetRoute(ctx, t.PubKey, r); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	run := func(round string, n int64) {
		var wg sync.WaitGroup
		for g := range callers {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > n {
						return
					}
					now := time.Now()
					body := fmt.Appendf(nil, `{"id":"evt_%s_%d_%d","object":"event","api_version":"2020-08-27","created":%d,"type":"bench.%d","livemode":false,"pending_webhooks":1,"data":{"object":{"id":"pi_%d","object":"payment_intent","amount":2000,"currency":"eur","status":"succeeded"}}}`,
						round, g, i, now.Unix(), i%routes, i)
					h := http.Header{}
					h.Set(webhooks.StripeSignatureHeader, "t="+strconv.FormatInt(now.Unix(), 10)+",v1="+fmt.Sprintf("%x", webhook.ComputeSignature(now, body, secret)))
					resp := hooks.Deliver(ctx, webhooks.Request{
						Provider: webhooks.Stripe, TenantKey: tk, Header: h, Body: bytes.NewReader(body), ContentLength: int64(len(body)),
					})
					if resp.Status != http.StatusOK || resp.Outcome != webhooks.OutcomeApplied {
						panic(fmt.Sprintf("delivery: %d %s: %v", resp.Status, resp.Outcome, resp.Err))
					}
				}
			})
		}
		wg.Wait()
	}
	run("warm", int64(2*callers)) // warm the instance pool
	next.Store(0)
	round := strconv.FormatInt(time.Now().UnixNano(), 36)
	cpu := cpuTime()
	b.ReportAllocs()
	b.ResetTimer()
	run(round, int64(b.N))
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

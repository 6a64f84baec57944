package launcher

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/client"
	"github.com/circlegate/circlegate/internal/redistest"
	"github.com/circlegate/circlegate/internal/redisx"
	"github.com/circlegate/circlegate/internal/testapps"
	"github.com/circlegate/circlegate/internal/testutil"
	"github.com/circlegate/circlegate/rpc"
)

// The fault tests run real processes: gateways (`circlegate serve`), workers
// (`circlegate worker`) and redis-server, and kill them with SIGKILL.

// writeFleetConfig writes the config file every process of a test fleet shares: the
// owner's tenant, the Redis, the shared compile cache, and extra TOML on top.
func writeFleetConfig(t *testing.T, redisURL string, owner testutil.Key, extra string) string {
	t.Helper()
	body := fmt.Sprintf(`data = %q

[log]
level = "info"

[execution]
cache_dir = %q
%s

[redis]
url = %q

[[tenants]]
pubkey = %q
`, t.TempDir(), testapps.CompileCacheDir(t), extra, redisURL, owner.Pub)
	path := filepath.Join(t.TempDir(), "fleet.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var workerRE = regexp.MustCompile(`msg="worker running" node=(\w+)`)

// startWorkerProcess runs `circlegate worker` and returns it with its node id once it
// runs. stderr lines go to the test log when -v.
func startWorkerProcess(t *testing.T, bin, cfg string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"worker", "--config", cfg, "--data", t.TempDir()}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	node := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if testing.Verbose() {
				t.Log("worker: " + sc.Text())
			}
			if m := workerRE.FindStringSubmatch(sc.Text()); m != nil {
				node <- m[1]
			}
		}
	}()
	select {
	case n := <-node:
		return cmd, n
	case <-time.After(30 * time.Second):
		t.Fatal("worker did not start")
	}
	return nil, ""
}

// kill9 kills a process with SIGKILL and waits for it.
func kill9(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
}

// ownerClient dials a gateway and authenticates as the tenant's owner.
func ownerClient(t *testing.T, addr string, owner testutil.Key) *client.Client {
	t.Helper()
	c, err := client.Dial(ctxT(t), "ws://"+addr+"/"+owner.Pub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Authenticate(ctxT(t), owner.Priv); err != nil {
		t.Fatal(err)
	}
	return c
}

// installWasm installs a module as c and returns its app id.
func installWasm(t *testing.T, c *client.Client, name string, wasm []byte) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var app appInfo
	if err := c.Call(ctx, "app.install", map[string]any{"wasm": base64.StdEncoding.EncodeToString(wasm), "name": name}, &app); err != nil {
		t.Fatalf("install %s: %v", name, err)
	}
	return app.AppID
}

// counterState reads a counter's value and its context's seq.
func counterState(t *testing.T, c *client.Client, id string) (value int, seq uint64) {
	t.Helper()
	var q struct{ Output valueOut }
	if err := c.Call(ctxT(t), "query", map[string]any{"contextId": id, "method": "get"}, &q); err != nil {
		t.Fatalf("query %s: %v", id, err)
	}
	var ci contextInfo
	if err := c.Call(ctxT(t), "context.get", []string{id}, &ci); err != nil {
		t.Fatalf("context.get %s: %v", id, err)
	}
	return q.Output.Value, ci.Seq
}

// verifyFleet runs `circlegate verify --redis` and fails the test on a broken chain.
func verifyFleet(t *testing.T, bin, url string) {
	t.Helper()
	out, err := exec.Command(bin, "verify", "--redis", url).CombinedOutput()
	if err != nil {
		t.Fatalf("verify --redis: %v\n%s", err, out)
	}
	t.Logf("verify: %s", strings.TrimSpace(string(out)))
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills real gateway, worker and redis-server processes")
	}
}

// TestFleetWorkerKill9MidJob: a worker killed with SIGKILL in the middle of a job
// leaves it pending; another worker takes it once the visibility timeout passes and
// runs it: the caller gets the result and the job commits exactly once.
func TestFleetWorkerKill9MidJob(t *testing.T) {
	skipShort(t)
	srv := redistest.Start(t, redistest.Options{})
	bin := buildBinary(t)
	owner := testutil.NewKey(t)
	cfg := writeFleetConfig(t, srv.URL(), owner, `job_timeout = "120s"
[execution.limits]
timeout = "60s"
[rpc]
call_timeout = "120s"
[redis.queue]
visibility_timeout = "1s"`)
	_, addr := startProcess(t, bin, "--config", cfg, "--workers", "0")
	w1, node1 := startWorkerProcess(t, bin, cfg)
	c := ownerClient(t, addr, owner)
	appID := installWasm(t, c, "slowcounter", testapps.BuildGo(t, "testdata/slowcounter"))
	spin := calibrateSpin(t, c, appID, 1500*time.Millisecond)
	target := createContext(t, c, map[string]any{"appId": appID}).ContextID

	type result struct {
		tx  txResult
		err error
	}
	res := make(chan result, 1)
	go func() {
		var r result
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		r.err = c.Call(ctx, "mutate", map[string]any{"contextId": target, "method": "increment", "args": map[string]int64{"spin": spin}}, &r.tx)
		res <- r
	}()
	rdb := dialRedis(t, srv.URL())
	testutil.CheckFor(t, 30*time.Second, func() error {
		p, err := rdb.XPending(context.Background(), "{cg:q}:jobs", "workers").Result()
		if err != nil || p.Consumers[node1] != 1 {
			return fmt.Errorf("the job is not running on worker 1 yet (%+v, %v)", p, err)
		}
		return nil
	})
	kill9(t, w1)
	killed := time.Now()
	startWorkerProcess(t, bin, cfg)
	var r result
	select {
	case r = <-res:
	case <-time.After(2 * time.Minute):
		t.Fatal("the job never completed after its worker was killed")
	}
	t.Logf("killed worker %s mid-job; the job completed elsewhere %v later", node1, time.Since(killed).Round(time.Millisecond))
	var out valueOut
	_ = json.Unmarshal(r.tx.Output, &out)
	if r.err != nil || out.Value != 1 || r.tx.Seq != 1 {
		t.Fatalf("mutate = %+v (%s), %v; want value 1 at seq 1", r.tx, r.tx.Output, r.err)
	}
	if v, seq := counterState(t, c, target); v != 1 || seq != 1 {
		t.Fatalf("after the redelivery: value %d at seq %d, want 1 at 1 (committed exactly once)", v, seq)
	}
	var info struct {
		Status   string
		Attempts int
	}
	if err := c.Call(ctxT(t), "job.get", map[string]string{"jobId": r.tx.JobID}, &info); err != nil || info.Status != "done" || info.Attempts != 2 {
		t.Fatalf("job.get = %+v, %v; want done after 2 deliveries", info, err)
	}
	verifyFleet(t, bin, srv.URL())
}

// calibrateSpin returns the spin count that keeps slowcounter's increment busy for
// about d on this machine (measured through the fleet, so it errs on the long side).
func calibrateSpin(t *testing.T, c *client.Client, appID string, d time.Duration) int64 {
	t.Helper()
	probe := createContext(t, c, map[string]any{"appId": appID}).ContextID
	const n = 50_000_000
	start := time.Now()
	if err := c.Call(ctxT(t), "mutate", map[string]any{"contextId": probe, "method": "increment", "args": map[string]int64{"spin": n}}, nil); err != nil {
		t.Fatal(err)
	}
	took := max(time.Since(start), time.Millisecond)
	return max(n, int64(float64(n)*float64(d)/float64(took)))
}

func dialRedis(t *testing.T, url string) redis.UniversalClient {
	t.Helper()
	rdb, err := redisx.Open(context.Background(), url, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// hammer runs loops concurrent mutate increments over ids through c until stop is
// closed; it records the highest value each context acknowledged and every error.
type hammer struct {
	mu     sync.Mutex
	acked  map[string]int
	values map[string]map[int]int // context -> value returned -> times
	total  int
	errors []error
	stop   chan struct{}
	wg     sync.WaitGroup
}

func startHammer(c *client.Client, ids []string, loops int, onErr func(err error, took time.Duration) bool) *hammer {
	h := &hammer{acked: map[string]int{}, values: map[string]map[int]int{}, stop: make(chan struct{})}
	for _, id := range ids {
		h.values[id] = map[int]int{}
	}
	for w := range loops {
		h.wg.Go(func() {
			id := ids[w%len(ids)]
			for {
				select {
				case <-h.stop:
					return
				default:
				}
				var tx txResult
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				err := c.Call(ctx, "mutate", map[string]any{"contextId": id, "method": "increment"}, &tx)
				cancel()
				if err != nil {
					h.mu.Lock()
					h.errors = append(h.errors, err)
					h.mu.Unlock()
					if !onErr(err, time.Since(start)) {
						return
					}
					continue
				}
				var v valueOut
				_ = json.Unmarshal(tx.Output, &v)
				h.mu.Lock()
				h.acked[id] = max(h.acked[id], v.Value)
				h.values[id][v.Value]++
				h.total++
				h.mu.Unlock()
			}
		})
	}
	return h
}

func (h *hammer) acknowledged() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

func (h *hammer) waitFor(t *testing.T, n int) {
	t.Helper()
	testutil.CheckFor(t, time.Minute, func() error {
		if got := h.acknowledged(); got < n {
			return fmt.Errorf("%d mutations acknowledged, waiting for %d", got, n)
		}
		return nil
	})
}

func (h *hammer) halt() {
	close(h.stop)
	h.wg.Wait()
}

// TestFleetTwoWorkerProcessesOneCounter: two worker processes run the jobs of many
// callers on one counter at once: every acknowledged increment is there, and each
// value was handed out once.
func TestFleetTwoWorkerProcessesOneCounter(t *testing.T) {
	skipShort(t)
	srv := redistest.Start(t, redistest.Options{})
	bin := buildBinary(t)
	owner := testutil.NewKey(t)
	cfg := writeFleetConfig(t, srv.URL(), owner, "")
	_, addr := startProcess(t, bin, "--config", cfg, "--workers", "0")
	startWorkerProcess(t, bin, cfg, "--concurrency", "2")
	startWorkerProcess(t, bin, cfg, "--concurrency", "2")
	c := ownerClient(t, addr, owner)
	id := createContext(t, c, map[string]any{"appId": install(t, c, "counter")}).ContextID
	h := startHammer(c, []string{id}, 32, func(err error, _ time.Duration) bool {
		t.Errorf("mutate: %v", err)
		return false
	})
	h.waitFor(t, 600)
	h.halt()
	v, seq := counterState(t, c, id)
	if v != h.total || seq != uint64(h.total) {
		t.Errorf("counter %d at seq %d after %d acknowledged increments", v, seq, h.total)
	}
	for value, n := range h.values[id] {
		if n != 1 {
			t.Errorf("value %d was returned %d times", value, n)
		}
	}
	verifyFleet(t, bin, srv.URL())
}

// TestFleetGatewayKill9: a gateway killed with SIGKILL in the middle of a stream of
// mutations loses nothing it acknowledged: another gateway of the fleet finds every
// acknowledged increment, state and log agree, and every hash chain verifies.
func TestFleetGatewayKill9(t *testing.T) {
	skipShort(t)
	srv := redistest.Start(t, redistest.Options{})
	bin := buildBinary(t)
	owner := testutil.NewKey(t)
	cfg := writeFleetConfig(t, srv.URL(), owner, "")
	g1, addr1 := startProcess(t, bin, "--config", cfg, "--workers", "0")
	_, addr2 := startProcess(t, bin, "--config", cfg, "--workers", "0")
	startWorkerProcess(t, bin, cfg)
	c1 := ownerClient(t, addr1, owner)
	appID := install(t, c1, "counter")
	var ids []string
	for range 4 {
		ids = append(ids, createContext(t, c1, map[string]any{"appId": appID}).ContextID)
	}
	h := startHammer(c1, ids, 16, func(error, time.Duration) bool { return false }) // the gateway is gone
	h.waitFor(t, 300)
	kill9(t, g1)
	h.halt()
	t.Logf("%d mutations acknowledged before the gateway's kill -9", h.total)
	c2 := ownerClient(t, addr2, owner)
	rdb := dialRedis(t, srv.URL())
	testutil.CheckFor(t, 30*time.Second, func() error { // jobs the dead gateway queued still run
		if n, err := rdb.XLen(context.Background(), "{cg:q}:jobs").Result(); err != nil || n != 0 {
			return fmt.Errorf("%d jobs still queued (%v)", n, err)
		}
		return nil
	})
	for _, id := range ids {
		v, seq := counterState(t, c2, id)
		if v < h.acked[id] {
			t.Errorf("context %s: value %d, but %d was acknowledged", id, v, h.acked[id])
		}
		if uint64(v) != seq {
			t.Errorf("context %s: value %d but %d txs: state and log disagree", id, v, seq)
		}
	}
	verifyFleet(t, bin, srv.URL())
}

// TestFleetRedisRestart: Redis (appendonly) is killed with SIGKILL under load and
// started again. Calls made while it is down fail fast with -32006, the gateway and
// the worker reconnect on their own, and nothing acknowledged is lost.
func TestFleetRedisRestart(t *testing.T) {
	skipShort(t)
	srv := redistest.Start(t, redistest.Options{AppendOnly: true})
	bin := buildBinary(t)
	owner := testutil.NewKey(t)
	cfg := writeFleetConfig(t, srv.URL(), owner, `job_timeout = "60s"
[rpc]
call_timeout = "60s"
[redis.queue]
visibility_timeout = "1s"`)
	_, addr := startProcess(t, bin, "--config", cfg, "--workers", "0")
	startWorkerProcess(t, bin, cfg)
	c := ownerClient(t, addr, owner)
	appID := install(t, c, "counter")
	var ids []string
	for range 4 {
		ids = append(ids, createContext(t, c, map[string]any{"appId": appID}).ContextID)
	}
	var mu sync.Mutex
	var outage []time.Duration // how long each call that failed took
	lost := 0                  // calls whose job Redis lost in the kill
	onOutage := func(err error, took time.Duration) bool {
		if code := rpcCode(err); code != rpc.CodeOverloaded {
			t.Errorf("a call during the outage failed with %v, want -32006", err)
			return false
		}
		mu.Lock()
		outage = append(outage, took)
		if strings.Contains(err.Error(), "job lost") {
			lost++
		}
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		return true
	}
	h := startHammer(c, ids, 8, onOutage)
	probeClient := ownerClient(t, addr, owner) // authenticating needs Redis
	h.waitFor(t, 200)
	srv.Kill()
	before := h.acknowledged()
	// Calls made during the outage come from a probe of their own: each of the
	// hammer's loops may be waiting for a job accepted just before the kill, whose
	// result can only come once Redis is back (on a loaded machine, all eight were).
	probe := startHammer(probeClient, ids, 2, onOutage)
	testutil.CheckFor(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(outage) < 20 {
			return fmt.Errorf("%d calls failed during the outage so far", len(outage))
		}
		return nil
	})
	srv.Restart()
	h.waitFor(t, before+200) // the gateway and the worker came back by themselves
	h.halt()
	probe.halt()
	mu.Lock()
	slowest := time.Duration(0)
	for _, d := range outage {
		slowest = max(slowest, d)
	}
	mu.Unlock()
	t.Logf("%d acknowledged before the kill, %d calls failed with -32006 during the outage (slowest %v, %d of them with a job Redis lost), %d acknowledged in all",
		before, len(outage), slowest.Round(time.Millisecond), lost, h.total)
	if slowest >= 60*time.Second {
		t.Errorf("a call during the outage took %v: it waited for its deadline instead of failing fast", slowest)
	}
	rdb := dialRedis(t, srv.URL())
	testutil.CheckFor(t, 30*time.Second, func() error { // jobs caught in the outage finish
		if n, err := rdb.XLen(context.Background(), "{cg:q}:jobs").Result(); err != nil || n != 0 {
			return fmt.Errorf("%d jobs still queued (%v)", n, err)
		}
		return nil
	})
	for _, id := range ids {
		v, seq := counterState(t, c, id)
		if v < h.acked[id] {
			t.Errorf("context %s: value %d after the restart, but %d was acknowledged", id, v, h.acked[id])
		}
		if uint64(v) != seq {
			t.Errorf("context %s: value %d but %d txs: state and log disagree", id, v, seq)
		}
	}
	verifyFleet(t, bin, srv.URL())
}

// TestFleetCluster: a fleet on a Redis Cluster of three masters: a gateway and a
// worker process run mutations on contexts spread over the masters, and the
// application and event tests pass with every gateway on the cluster.
func TestFleetCluster(t *testing.T) {
	skipShort(t)
	cl := redistest.StartCluster(t)
	bin := buildBinary(t)
	owner := testutil.NewKey(t)
	cfg := writeFleetConfig(t, cl.URL(), owner, "")
	_, addr := startProcess(t, bin, "--config", cfg, "--workers", "0")
	startWorkerProcess(t, bin, cfg)
	c := ownerClient(t, addr, owner)
	appID := install(t, c, "counter")
	var ids []string
	for range 12 {
		ids = append(ids, createContext(t, c, map[string]any{"appId": appID}).ContextID)
	}
	h := startHammer(c, ids, 12, func(err error, _ time.Duration) bool {
		t.Errorf("mutate: %v", err)
		return false
	})
	h.waitFor(t, 300)
	h.halt()
	for _, id := range ids {
		if v, seq := counterState(t, c, id); v != h.acked[id] || seq != uint64(v) {
			t.Errorf("context %s: value %d at seq %d, %d acknowledged", id, v, seq, h.acked[id])
		}
	}
	masters := map[string]bool{}
	for _, id := range ids {
		for _, n := range cl.Nodes {
			if r, _ := n.Do("EXISTS", "cg:c:{"+id+"}:h"); r == ":1" {
				masters[n.Addr()] = true
			}
		}
	}
	if len(masters) < 2 {
		t.Errorf("12 contexts landed on %d master(s), want them spread", len(masters))
	}
	verifyFleet(t, bin, cl.URL())
	runFleetMode(t, cl.URL(), []string{"TestEventsOverWebSocket", "TestJobGet"})
}

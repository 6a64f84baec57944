package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/circlegate/circlegate/tenant"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// clockTicks is CLK_TCK, the unit of utime and stime in /proc/<pid>/stat. It is 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// gatewayConfig is what a scenario needs from the gateway's config file.
type gatewayConfig struct {
	// MaxConnections is [sessions] max_connections.
	MaxConnections int
	// StripeSecret, if set, is a Stripe webhook secret of the tenant.
	StripeSecret string
	// Redis, if set, makes the gateway a fleet node on this Redis URL.
	Redis string
	// Workers is [execution] workers (0: the default).
	Workers int
	// EventWriteInterval, if set, is [sessions] event_write_interval.
	EventWriteInterval time.Duration
}

// gateway is a circlegate subprocess serving one tenant on a free loopback port, with
// its config, data and log in a temporary directory removed by stop.
type gateway struct {
	cmd    *exec.Cmd
	dir    string
	addr   string
	tenant string // tenant public key, compressed hex
	owner  string // tenant private key, hex: the owner's key, for the application scenarios
	log    string // path of the gateway's stdout and stderr
	exited chan struct{}
}

// startGateway writes a config and starts e.gateway serving it, then waits for /health.
func startGateway(ctx context.Context, e *env, cfg gatewayConfig) (*gateway, error) {
	bin := e.gateway
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("gateway binary: %w (build it with: go build -o bin/circlegate ./cmd/circlegate)", err)
	}
	dir, err := os.MkdirTemp("", "cgbench-")
	if err != nil {
		return nil, err
	}
	g := &gateway{dir: dir, log: filepath.Join(dir, "gateway.log"), exited: make(chan struct{})}
	if err := g.start(ctx, bin, e.gatewayCPUs, cfg); err != nil {
		g.stop()
		return nil, err
	}
	return g, nil
}

func (g *gateway) start(ctx context.Context, bin, cpus string, cfg gatewayConfig) error {
	priv, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		return err
	}
	g.tenant = tenant.PubKeyHex(priv.PubKey())
	g.owner = hex.EncodeToString(priv.Serialize())
	if g.addr, err = freePort(); err != nil {
		return err
	}
	conf := filepath.Join(g.dir, "circlegate.toml")
	if err := os.WriteFile(conf, []byte(g.configText(cfg)), 0o600); err != nil {
		return err
	}
	logFile, err := os.Create(g.log)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child has its own copy
	g.cmd = childCommand(cpus, bin, "serve", "--config", conf)
	g.cmd.Stdout, g.cmd.Stderr = logFile, logFile
	if err := g.cmd.Start(); err != nil {
		return fmt.Errorf("start gateway: %w", err)
	}
	go func() { _ = g.cmd.Wait(); close(g.exited) }()
	if err := g.waitHealthy(ctx, 15*time.Second); err != nil {
		return fmt.Errorf("%w\n%s", err, g.logTail(2048))
	}
	return nil
}

func (g *gateway) configText(cfg gatewayConfig) string {
	return fmt.Sprintf(`listen = %q
data = %q

[log]
level = "warn"

[sessions]
max_connections = %d
ping_interval = "25s"
auth_timeout = "30s"
%s
[[tenants]]
pubkey = %q
name = "bench"
`, g.addr, filepath.Join(g.dir, "data"), cfg.MaxConnections, eventWriteTOML(cfg.EventWriteInterval), g.tenant) + webhookSecretTOML(cfg.StripeSecret) + fleetTOML(cfg)
}

// fleetTOML is the [execution] and [redis] sections of a fleet node, if any. TOML
// allows a table after the [[tenants]] entries.
func fleetTOML(cfg gatewayConfig) string {
	if cfg.Redis == "" {
		return ""
	}
	return fmt.Sprintf("\n[execution]\nworkers = %d\n\n[redis]\nurl = %q\n", cfg.Workers, cfg.Redis)
}

func eventWriteTOML(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return fmt.Sprintf("event_write_interval = %q\n", d.String())
}

func webhookSecretTOML(secret string) string {
	if secret == "" {
		return ""
	}
	return fmt.Sprintf("\n[[tenants.webhook_secrets]]\nprovider = \"stripe\"\nsecret = %q\n", secret)
}

// childCommand returns a command that dies with this process and, when cpus is not empty,
// runs on those CPUs only: taskset sets the affinity and execs name, so the process
// keeps taskset's pid and its Go runtime sizes GOMAXPROCS to the CPUs it may use.
func childCommand(cpus, name string, args ...string) *exec.Cmd {
	if cpus != "" {
		args = append([]string{"-c", cpus, name}, args...)
		name = "taskset"
	}
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// freePort returns a loopback address that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (g *gateway) waitHealthy(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		resp, err := httpGet(ctx, "http://"+g.addr+"/health")
		if err == nil && resp == http.StatusOK {
			return nil
		}
		select {
		case <-g.exited:
			return errors.New("gateway exited during start")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("gateway not healthy after %s", limit)
}

func httpGet(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// url returns the tenant's WebSocket URL.
func (g *gateway) url() string { return "ws://" + g.addr + "/" + g.tenant }

// alive reports whether the gateway process is still running.
func (g *gateway) alive() bool {
	select {
	case <-g.exited:
		return false
	default:
		return true
	}
}

// stop ends the gateway (SIGTERM, then SIGKILL after 10 s) and removes its directory.
// It is safe to call on a gateway that failed to start.
func (g *gateway) stop() {
	if g.cmd != nil && g.cmd.Process != nil {
		_ = g.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(10 * time.Second):
			_ = g.cmd.Process.Kill()
			<-g.exited
		}
	}
	_ = os.RemoveAll(g.dir)
}

// logTail returns the last n bytes of the gateway's log.
func (g *gateway) logTail(n int64) string {
	b, err := os.ReadFile(g.log)
	if err != nil {
		return ""
	}
	if int64(len(b)) > n {
		b = b[int64(len(b))-n:]
	}
	return "gateway log:\n" + string(b)
}

// metrics scrapes /metrics and returns the values of the named samples (a labelled
// one named with its labels, as /metrics writes it); each must be there.
func (g *gateway) metrics(ctx context.Context, names ...string) (map[string]float64, error) {
	out, err := g.metricsOrZero(ctx, names...)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("metric %s not in /metrics", n)
		}
	}
	return out, nil
}

// metricsOrZero is metrics with the samples /metrics lacks left out of the map (so
// read as 0): a labelled sample appears only once its labels have been used.
func (g *gateway) metricsOrZero(ctx context.Context, names ...string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+g.addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if ok && slices.Contains(names, name) {
			if out[name], err = strconv.ParseFloat(strings.TrimSpace(value), 64); err != nil {
				return nil, fmt.Errorf("metric %s: %w", name, err)
			}
		}
	}
	return out, sc.Err()
}

// rssKiB returns the gateway's resident set size.
func (g *gateway) rssKiB() (int64, error) { return procRSS(g.cmd.Process.Pid) }

// minRSS samples the RSS n times, every interval, and returns the smallest sample.
func (g *gateway) minRSS(ctx context.Context, n int, every time.Duration) (int64, error) {
	low := int64(-1)
	for i := range n {
		if i > 0 {
			if err := sleep(ctx, every); err != nil {
				return 0, err
			}
		}
		v, err := g.rssKiB()
		if err != nil {
			return 0, err
		}
		if low < 0 || v < low {
			low = v
		}
	}
	return low, nil
}

// cpuSeconds returns the gateway's user plus system CPU time so far.
func (g *gateway) cpuSeconds() (float64, error) { return procCPU(g.cmd.Process.Pid) }

// procRSS reads VmRSS (KiB) from /proc/<pid>/status.
func procRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// procCPU reads utime + stime from /proc/<pid>/stat, in seconds.
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces; fields 14
	// and 15 (utime, stime) are the 12th and 13th after it.
	rest := b[bytes.LastIndexByte(b, ')')+1:]
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(utime+stime) / clockTicks, nil
}

// machineCPU returns the CPU time all processes have used so far (all CPUs together):
// the busy fields of the cpu line of /proc/stat.
func machineCPU() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("unexpected /proc/stat")
	}
	var busy int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, err
		}
		busy += v
	}
	return float64(busy) / clockTicks, nil
}

// meter measures what a load costs: CPU time of the gateway, of this process and of
// the machine as a whole (the load generators report their own), and the gateway's
// allocations and GC cycles.
type meter struct {
	gw     *gateway
	before usage
	mach   float64
}

// usage is what a load cost; CPU in seconds.
type usage struct {
	gateway, load, other float64
	allocBytes, gcCycles float64
}

var meterMetrics = []string{"go_memstats_alloc_bytes_total", "go_gc_duration_seconds_count"}

func (m *meter) read(ctx context.Context) (u usage, machine float64, err error) {
	var err1, err2, err3, err4 error
	u.gateway, err1 = m.gw.cpuSeconds()
	u.load, err2 = procCPU(os.Getpid())
	machine, err3 = machineCPU()
	var mv map[string]float64
	if mv, err4 = m.gw.metrics(ctx, meterMetrics...); err4 == nil {
		u.allocBytes, u.gcCycles = mv[meterMetrics[0]], mv[meterMetrics[1]]
	}
	return u, machine, errors.Join(err1, err2, err3, err4)
}

// startMeter reads the counters at the start of a load.
func startMeter(ctx context.Context, gw *gateway) (*meter, error) {
	m := &meter{gw: gw}
	var err error
	m.before, m.mach, err = m.read(ctx)
	return m, err
}

// stop reads the counters again and returns the difference; load is the CPU time the
// load generators reported using.
func (m *meter) stop(ctx context.Context, load float64) (usage, error) {
	now, machine, err := m.read(ctx)
	if err != nil {
		return usage{}, err
	}
	u := usage{
		gateway:    now.gateway - m.before.gateway,
		load:       load + now.load - m.before.load,
		allocBytes: now.allocBytes - m.before.allocBytes,
		gcCycles:   now.gcCycles - m.before.gcCycles,
	}
	u.other = max(0, machine-m.mach-u.gateway-u.load)
	return u, nil
}

// cores describes where the CPU went over wall seconds, and warns when other
// processes took enough of it to distort the figures.
func (u usage) cores(wall float64) string {
	s := fmt.Sprintf("gateway %.2f cores, load generators %.2f, other processes %.2f", u.gateway/wall, u.load/wall, u.other/wall)
	if u.other/wall > 0.2 {
		s += " (BUSY MACHINE: figures distorted)"
	}
	return s
}

// perOp describes the gateway's cost of one of n operations.
func (u usage) perOp(n int) string {
	return fmt.Sprintf("gateway per op: %.0f µs CPU, %.1f KiB allocated; %.0f GC cycles",
		u.gateway/float64(n)*1e6, u.allocBytes/float64(n)/1024, u.gcCycles)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

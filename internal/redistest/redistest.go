// Package redistest starts real redis-server processes for tests: a single server on a
// free loopback port with its own temporary directory, which a test can kill -9 and
// restart (with appendonly on, the data survives), and a Redis Cluster of three
// masters created with `redis-cli --cluster create`. Every process is stopped in
// t.Cleanup. A test that needs Redis fails, naming the package to install, when
// redis-server is not in PATH (`make deps` installs it).
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Options configure a server.
type Options struct {
	// AppendOnly turns on the append-only file (appendfsync everysec), so data
	// survives a kill -9 of the server and a restart.
	AppendOnly bool
	// Cluster starts the server as a cluster node (cluster-enabled yes).
	Cluster bool
}

// Server is one redis-server process.
type Server struct {
	t    testing.TB
	opts Options
	Dir  string
	Port int
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a redis-server on a free loopback port and waits until it answers.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := requireRedis(t)
	s := &Server{t: t, opts: opts, Dir: t.TempDir()}
	for attempt := 0; ; attempt++ {
		s.Port = freePort(t)
		err := s.start(bin)
		if err == nil {
			break
		}
		if attempt == 4 {
			t.Fatalf("redistest: %v", err)
		}
	}
	t.Cleanup(s.Kill)
	return s
}

func requireRedis(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redistest: redis-server not found in PATH: install it (apt-get install redis-server, or make deps)")
	}
	return bin
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *Server) args() []string {
	args := []string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--dir", s.Dir,
		"--save", "", "--daemonize", "no", "--protected-mode", "no",
		"--logfile", filepath.Join(s.Dir, "redis.log"),
	}
	if s.opts.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "everysec")
	}
	if s.opts.Cluster {
		args = append(args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000")
	}
	return args
}

func (s *Server) start(bin string) error {
	cmd := exec.Command(bin, s.args()...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if reply, err := s.Do("PING"); err == nil && reply == "+PONG" {
			s.cmd, s.done = cmd, done
			return nil
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
			return fmt.Errorf("redis-server on port %d exited: %s", s.Port, tail(string(log)))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("redis-server on port %d did not answer PING within 10s", s.Port)
		}
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-5):], "\n")
}

// Addr returns host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// URL returns the redis:// URL of database 0.
func (s *Server) URL() string { return "redis://" + s.Addr() + "/0" }

// Kill stops the server with SIGKILL (kill -9) and waits for it to exit. It does
// nothing if the server is not running.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// Restart starts the server again on the same port and directory after Kill; with
// AppendOnly it loads what it had written.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	var err error
	for attempt := 0; attempt < 50; attempt++ { // the port may linger a moment
		if err = s.start(requireRedis(s.t)); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.Fatalf("redistest: restart: %v", err)
}

// Do sends one command and returns the first line of the
// reply (e.g. "+PONG", ":3", "$5"), for probing without a client library.
func (s *Server) Do(args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(encode(args)); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// encode returns a command in RESP.
func encode(args []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return []byte(b.String())
}

// Info returns one field of INFO (e.g. "aof_enabled"), or "" if absent.
func (s *Server) Info(field string) string { return s.field(field, "INFO") }

// CPU returns the CPU time the server has used, user and system (INFO's used_cpu_*).
func (s *Server) CPU(t testing.TB) time.Duration {
	t.Helper()
	var total float64
	for _, f := range []string{"used_cpu_sys", "used_cpu_user"} {
		v, err := strconv.ParseFloat(s.Info(f), 64)
		if err != nil {
			t.Fatalf("redistest: INFO %s: %v", f, err)
		}
		total += v
	}
	return time.Duration(total * float64(time.Second))
}

// field returns the value of "field:value" in the bulk reply of a command whose
// reply is such lines (INFO, CLUSTER INFO), or "" if absent.
func (s *Server) field(field string, args ...string) string {
	c, err := net.DialTimeout("tcp", s.Addr(), time.Second)
	if err != nil {
		return ""
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(encode(args)); err != nil {
		return ""
	}
	r := bufio.NewReader(c)
	head, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(head, "$") {
		return ""
	}
	n, _ := strconv.Atoi(strings.TrimSpace(head[1:]))
	for read := 0; read < n; {
		line, err := r.ReadString('\n')
		if err != nil {
			return ""
		}
		read += len(line)
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v
		}
	}
	return ""
}

// Cluster is a Redis Cluster of three masters on loopback, no replicas.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts three cluster-enabled servers, joins them with
// `redis-cli --cluster create` and waits until every node reports cluster_state:ok.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatal("redistest: redis-cli not found in PATH: install redis-server (it brings redis-cli)")
	}
	c := &Cluster{}
	args := []string{"--cluster", "create"}
	for range 3 {
		n := Start(t, Options{Cluster: true})
		c.Nodes = append(c.Nodes, n)
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range c.Nodes {
		for n.clusterState() != "ok" {
			if time.Now().After(deadline) {
				t.Fatalf("redistest: cluster node %s: state %q, want ok", n.Addr(), n.clusterState())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

func (s *Server) clusterState() string { return s.field("cluster_state", "CLUSTER", "INFO") }

// URL returns a redis:// URL of the first node; a client finds the others through it.
func (c *Cluster) URL() string { return c.Nodes[0].URL() }

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime/trace"
	"strings"
	"testing"
	"time"
)

//go:noinline
func traceSleeper(done chan struct{}, wake <-chan struct{}) {
	<-wake
	close(done)
}

// recordTrace traces a goroutine that blocks for about 30 ms on a channel and returns
// the trace.
func recordTrace(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := trace.Start(&buf); err != nil {
		t.Fatal(err)
	}
	done, wake := make(chan struct{}), make(chan struct{})
	go traceSleeper(done, wake)
	time.Sleep(30 * time.Millisecond)
	close(wake)
	<-done
	trace.Stop()
	return buf.Bytes()
}

func TestAnalyzeFindsABlockedRole(t *testing.T) {
	data := recordTrace(t)
	a, err := analyze(bytes.NewReader(data), []role{{"sleeper", "traceSleeper"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for key, ds := range a.blocked {
		if !strings.HasPrefix(key, "sleeper ") || !strings.Contains(key, "chanrecv") {
			continue
		}
		for _, d := range ds {
			if d >= 20*time.Millisecond {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no blocked stretch of 20 ms or more on a channel for role sleeper: %v", a.blocked)
	}
	if len(a.running["sleeper"]) == 0 {
		t.Errorf("role sleeper never ran: %v", a.running)
	}
	var out bytes.Buffer
	a.report(&out, 5, "sleeper", 1)
	for _, want := range []string{"blocked, by role and where", "sleeper created", "longest waits of sleeper", "(goroutine "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	a.report(&out, 5, "nobody", 1)
	if !strings.Contains(out.String(), "no goroutine of role nobody waited") {
		t.Errorf("report for a role that never waited:\n%s", out.String())
	}
}

func TestAnalyzeSkips(t *testing.T) {
	data := recordTrace(t)
	a, err := analyze(bytes.NewReader(data), []role{{"sleeper", "traceSleeper"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(a.runs) + len(a.waits); n != 0 {
		t.Errorf("with the whole trace skipped, %d stretches remain", n)
	}
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.trace")
	if err := os.WriteFile(good, recordTrace(t), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.trace")
	if err := os.WriteFile(bad, []byte("not a trace"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"-skip", "0", "-roles", "sleeper=traceSleeper", good}, 0},
		{[]string{good, good}, 2},
		{[]string{"-roles", "sleeper", good}, 2},
		{[]string{"-roles", "=x", good}, 2},
		{[]string{"-n", "-1", good}, 2},
		{[]string{"-rows", "-1", good}, 2},
		{[]string{filepath.Join(dir, "missing")}, 1},
		{[]string{bad}, 1},
	} {
		var out, errOut bytes.Buffer
		if code := run(c.args, &out, &errOut); code != c.code {
			t.Errorf("run %q: exit %d, want %d (stderr %q)", c.args, code, c.code, errOut.String())
		}
		if c.code == 0 && !strings.Contains(out.String(), "sleeper") {
			t.Errorf("run %q: output does not name the role:\n%s", c.args, out.String())
		}
	}
}

func TestParseRoles(t *testing.T) {
	rs, err := parseRoles("a=x, b=y.z")
	if err != nil || len(rs) != 2 || rs[0] != (role{"a", "x"}) || rs[1] != (role{"b", "y.z"}) {
		t.Errorf("parseRoles: %v, %v", rs, err)
	}
	for _, s := range []string{"", "a", "a=", "=b", "a=b,"} {
		if _, err := parseRoles(s); err == nil {
			t.Errorf("parseRoles(%q) accepted", s)
		}
	}
}

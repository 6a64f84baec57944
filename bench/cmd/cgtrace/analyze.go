package main

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"golang.org/x/exp/trace"
)

// A role names the goroutines whose stack, where they stop running, holds a frame
// whose function name contains frame.
type role struct{ name, frame string }

// defaultRoles are the gateway's goroutines that a mutation or a query passes through.
// The first match wins: a serve worker's stack also holds its session's read closure.
var defaultRoles = []role{
	{"logwriter", "(*LogWriter).flushLoop"},
	{"committer", "CommitMany"},
	{"executor", "executeRound"},
	{"serve", "(*Hub).dispatch"},
	{"reader", "(*session).read"},
}

// parseRoles reads -roles: name=frame pairs separated by commas.
func parseRoles(s string) ([]role, error) {
	var out []role
	for _, pair := range strings.Split(s, ",") {
		name, frame, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok || name == "" || frame == "" {
			return nil, fmt.Errorf("role %q: want name=frame", pair)
		}
		out = append(out, role{name, frame})
	}
	return out, nil
}

// stretch is a span of one goroutine in one state.
type stretch struct {
	start, end trace.Time
	g          trace.GoID
	proc       trace.ProcID // running: the processor
	role, at   string       // at: where it stopped (blocked, syscall) or what made it runnable
}

// analysis is what a trace says, after the skipped start, per role and state.
type analysis struct {
	syscall, runnable, blocked, running map[string][]time.Duration // key: role + " " + at
	runs                                []stretch                  // every running stretch, for the long waits
	waits                               []stretch                  // every runnable stretch
	procs                               []procChange
	marks                               [][2]trace.Time // the collector's concurrent mark phases
	first                               trace.Time
}

type procChange struct {
	t    trace.Time
	p    trace.ProcID
	what string
}

type goState struct {
	role, at string
	since    trace.Time
	proc     trace.ProcID
}

// analyze reads a whole trace. Stretches that end within skip of its start are left
// out of the distributions.
func analyze(r io.Reader, roles []role, skip time.Duration) (*analysis, error) {
	tr, err := trace.NewReader(r)
	if err != nil {
		return nil, err
	}
	a := &analysis{syscall: map[string][]time.Duration{}, runnable: map[string][]time.Duration{},
		blocked: map[string][]time.Duration{}, running: map[string][]time.Duration{}}
	gs := map[trace.GoID]*goState{}
	var markStart trace.Time
	for {
		ev, err := tr.ReadEvent()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		t := ev.Time()
		if a.first == 0 {
			a.first = t
		}
		switch ev.Kind() {
		case trace.EventRangeBegin, trace.EventRangeEnd:
			if !strings.HasPrefix(ev.Range().Name, "GC concurrent mark") {
				continue
			}
			if ev.Kind() == trace.EventRangeBegin {
				markStart = t
			} else if markStart != 0 {
				a.marks = append(a.marks, [2]trace.Time{markStart, t})
			}
			continue
		case trace.EventStateTransition:
		default:
			continue
		}
		st := ev.StateTransition()
		switch st.Resource.Kind {
		case trace.ResourceProc:
			from, to := st.Proc()
			a.procs = append(a.procs, procChange{t, st.Resource.Proc(), from.String() + "->" + to.String()})
			continue
		case trace.ResourceGoroutine:
		default:
			continue
		}
		id := st.Resource.Goroutine()
		from, to := st.Goroutine()
		g := gs[id]
		if g == nil {
			g = &goState{role: "other"}
			gs[id] = g
		}
		if from == trace.GoRunning || from == trace.GoNotExist { // a new goroutine's stack is where it starts
			if r := roleOf(st.Stack, roles); r != "" {
				g.role = r
			}
		}
		if g.since != 0 && t-a.first > trace.Time(skip) {
			a.add(from, stretch{start: g.since, end: t, g: id, proc: g.proc, role: g.role, at: g.at})
		}
		g.since = t
		switch {
		case to == trace.GoRunning:
			g.proc = ev.Proc()
		case to == trace.GoWaiting || to == trace.GoSyscall:
			g.at = frames(st.Stack, 2)
		case to == trace.GoRunnable && from == trace.GoNotExist:
			g.at = "created"
		case to == trace.GoRunnable && from == trace.GoSyscall:
			g.at = "after a syscall that lost its P"
		case to == trace.GoRunnable && from == trace.GoWaiting:
			g.at = "unblocked"
		case to == trace.GoRunnable:
			g.at = "preempted or yielded"
		}
	}
	return a, nil
}

// add files a stretch in the state it ends.
func (a *analysis) add(state trace.GoState, s stretch) {
	d := time.Duration(s.end - s.start)
	switch state {
	case trace.GoSyscall:
		a.syscall[s.role+" "+s.at] = append(a.syscall[s.role+" "+s.at], d)
	case trace.GoRunnable:
		a.runnable[s.role+" "+s.at] = append(a.runnable[s.role+" "+s.at], d)
		a.waits = append(a.waits, s)
	case trace.GoWaiting:
		a.blocked[s.role+" "+s.at] = append(a.blocked[s.role+" "+s.at], d)
	case trace.GoRunning:
		a.running[s.role] = append(a.running[s.role], d)
		a.runs = append(a.runs, s)
	}
}

// roleOf returns the first role with a frame in stack, or "".
func roleOf(stack trace.Stack, roles []role) string {
	for _, r := range roles {
		for f := range stack.Frames() {
			if strings.Contains(f.Func, r.frame) {
				return r.name
			}
		}
	}
	return ""
}

// frames names the innermost n frames of stack, innermost first, without package paths.
func frames(stack trace.Stack, n int) string {
	var parts []string
	for f := range stack.Frames() {
		fn := f.Func
		if i := strings.LastIndex(fn, "/"); i >= 0 {
			fn = fn[i+1:]
		}
		parts = append(parts, fn)
		if len(parts) == n {
			break
		}
	}
	if len(parts) == 0 {
		return "?"
	}
	return strings.Join(parts, " < ")
}

// inMark reports whether s overlaps a concurrent mark phase.
func (a *analysis) inMark(s stretch) bool {
	for _, m := range a.marks {
		if s.start < m[1] && s.end > m[0] {
			return true
		}
	}
	return false
}

// summary is a distribution's line.
type summary struct {
	key                     string
	n                       int
	avg, p50, p90, p99, max time.Duration
}

func summarize(m map[string][]time.Duration) []summary {
	out := make([]summary, 0, len(m))
	for k, ds := range m {
		slices.Sort(ds)
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		n := len(ds)
		out = append(out, summary{k, n, sum / time.Duration(n), ds[n/2], ds[n*9/10], ds[n*99/100], ds[n-1]})
	}
	slices.SortFunc(out, func(x, y summary) int { return cmp.Or(y.n-x.n, strings.Compare(x.key, y.key)) })
	return out
}

// report writes the distributions, then the longest runnable waits of longRole with
// what each processor ran meanwhile.
func (a *analysis) report(w io.Writer, rows int, longRole string, long int) {
	for _, part := range []struct {
		title string
		m     map[string][]time.Duration
	}{
		{"system calls, by role and call", a.syscall},
		{"waiting for a processor (runnable), by role and what made it runnable", a.runnable},
		{"blocked, by role and where", a.blocked},
		{"running, by role", a.running},
	} {
		fmt.Fprintf(w, "\n%s:\n", part.title)
		for i, s := range summarize(part.m) {
			if i == rows {
				break
			}
			fmt.Fprintf(w, "  n=%-7d avg %-9s p50 %-9s p90 %-9s p99 %-9s max %-9s %s\n", s.n,
				round(s.avg), round(s.p50), round(s.p90), round(s.p99), round(s.max), s.key)
		}
	}
	if longRole == "" || long == 0 {
		return
	}
	var waits []stretch
	for _, s := range a.waits {
		if s.role == longRole {
			waits = append(waits, s)
		}
	}
	if len(waits) == 0 {
		fmt.Fprintf(w, "\nno goroutine of role %s waited for a processor\n", longRole)
		return
	}
	slices.SortFunc(waits, func(x, y stretch) int { return cmp.Compare(y.end-y.start, x.end-x.start) })
	top := min(len(waits), 100)
	inMark := 0
	for _, s := range waits[:top] {
		if a.inMark(s) {
			inMark++
		}
	}
	fmt.Fprintf(w, "\nthe %d longest waits of %s for a processor (%d of the longest %d overlap a GC mark phase):\n",
		min(long, len(waits)), longRole, inMark, top)
	for _, s := range waits[:min(long, len(waits))] {
		fmt.Fprintf(w, "  %s at +%s (goroutine %d, %s, GC mark: %v)\n", round(time.Duration(s.end-s.start)),
			round(time.Duration(s.start-a.first)), s.g, s.at, a.inMark(s))
		for _, p := range a.procs {
			if p.t >= s.start && p.t <= s.end {
				fmt.Fprintf(w, "    +%-9s P%d %s\n", round(time.Duration(p.t-s.start)), p.p, p.what)
			}
		}
		for _, r := range a.runs {
			if r.end > s.start && r.start < s.end {
				fmt.Fprintf(w, "    +%-9s P%d ran goroutine %d (%s) for %s\n", round(time.Duration(max(r.start, s.start)-s.start)),
					r.proc, r.g, r.role, round(time.Duration(min(r.end, s.end)-max(r.start, s.start))))
			}
		}
	}
}

func round(d time.Duration) string {
	switch {
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	case d >= time.Microsecond:
		return d.Round(100 * time.Nanosecond).String()
	}
	return d.String()
}

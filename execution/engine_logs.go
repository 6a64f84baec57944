package execution

import (
	"bytes"
	"strings"
)

// maxStderrBytes is how much of the guest's stderr is kept to explain a failure.
const maxStderrBytes = 1 << 10

// addLog adds one log line, or counts it as dropped past max_log_lines.
func (in *engineInstance) addLog(b []byte) {
	cl := &in.call
	if len(cl.logs) >= cl.lim.MaxLogLines {
		cl.drops++
		return
	}
	if len(b) > abiMaxLogLineBytes {
		b = b[:abiMaxLogLineBytes]
	}
	cl.logs = append(cl.logs, strings.ToValidUTF8(string(b), "\uFFFD"))
}

// engineStdio receives the guest's stdout or stderr (WASI fd 1 and 2): every line
// becomes a log line; the start of stderr is kept to explain a failure.
type engineStdio struct {
	in     *engineInstance
	stderr bool
}

func (w engineStdio) Write(p []byte) (int, error) {
	n, cl := len(p), &w.in.call
	if w.stderr && len(cl.stderr) < maxStderrBytes {
		cl.stderr = append(cl.stderr, p[:min(len(p), maxStderrBytes-len(cl.stderr))]...)
	}
	if !cl.active {
		return n, nil
	}
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if room := abiMaxLogLineBytes - len(cl.line); room > 0 {
				cl.line = append(cl.line, p[:min(len(p), room)]...)
			}
			break
		}
		cl.line = append(cl.line, p[:i]...)
		w.in.addLog(cl.line)
		cl.line = cl.line[:0]
		p = p[i+1:]
	}
	return n, nil
}

// flushLine logs an unfinished stdout or stderr line at the end of a call.
func (in *engineInstance) flushLine() {
	if len(in.call.line) > 0 {
		in.addLog(in.call.line)
		in.call.line = in.call.line[:0]
	}
}

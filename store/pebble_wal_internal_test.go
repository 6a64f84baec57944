package store

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestFilledLogKeepsRecords writes a log through walFS with fills small enough to
// run into Pebble's writes all the time (no gap), then reads the file back: every
// byte written is there, in order, and past it the file is zeros, filled ahead.
func TestFilledLogKeepsRecords(t *testing.T) {
	fs := walFS{FS: vfs.Default, chunk: 4 << 10, ahead: 8 << 10}
	name := filepath.Join(t.TempDir(), "000007.log")
	f, err := fs.Create(name, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.(*filledLog); !ok {
		t.Fatalf("a log was created as %T, not filled ahead", f)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var want []byte
	for range 3000 {
		p := make([]byte, 1+rng.IntN(3000))
		for i := range p {
			p[i] = byte(1 + rng.IntN(255)) // never zero, so a zeroed byte shows
		}
		want = append(want, p...)
		if n, err := f.Write(p); err != nil || n != len(p) {
			t.Fatalf("write: %d, %v", n, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) <= len(want) {
		t.Fatalf("file is %d bytes for %d written: nothing was filled ahead", len(got), len(want))
	}
	if i := firstDiff(got[:len(want)], want); i >= 0 {
		t.Fatalf("byte %d of %d differs: a fill overwrote what Pebble wrote", i, len(want))
	}
	if tail := got[len(want):]; !bytes.Equal(tail, make([]byte, len(tail))) {
		t.Fatal("the filled part past the writes is not zeros")
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// TestWALFSLeavesOtherFiles: only logs are filled; other files are Pebble's own.
func TestWALFSLeavesOtherFiles(t *testing.T) {
	fs := newWALFS(vfs.Default)
	f, err := fs.Create(filepath.Join(t.TempDir(), "MANIFEST-000001"), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.(*filledLog); ok {
		t.Fatal("a manifest is filled ahead like a log")
	}
}

// TestReusedLogFilledPastItsSize: a recycled log counts as written up to its size,
// and is filled on from there once Pebble's writes come near it.
func TestReusedLogFilledPastItsSize(t *testing.T) {
	dir := t.TempDir()
	old, reused := filepath.Join(dir, "000001.log"), filepath.Join(dir, "000002.log")
	garbage := bytes.Repeat([]byte{0xee}, 16<<10)
	if err := os.WriteFile(old, garbage, 0o644); err != nil {
		t.Fatal(err)
	}
	fs := walFS{FS: vfs.Default, chunk: 4 << 10, ahead: 8 << 10}
	f, err := fs.ReuseForWrite(old, reused, "test")
	if err != nil {
		t.Fatal(err)
	}
	if w := f.(*filledLog).written; w != int64(len(garbage)) {
		t.Fatalf("a reused log of %d bytes counts %d as written", len(garbage), w)
	}
	rec := bytes.Repeat([]byte{1}, 12<<10) // within 8 KiB of the old end: a fill starts there
	if _, err := f.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(reused)
	if err != nil {
		t.Fatal(err)
	}
	want := append(append(rec, garbage[len(rec):]...), make([]byte, 4<<10)...)
	if !bytes.Equal(got, want) {
		t.Fatalf("reused log is %d bytes, want the record, the old tail and a 4 KiB fill (%d bytes)", len(got), len(want))
	}
}

// shortFile fails every Write after the first, writing half of it.
type shortFile struct {
	vfs.File
	writes int
}

func (f *shortFile) Write(p []byte) (int, error) {
	f.writes++
	if f.writes == 1 {
		return f.File.Write(p)
	}
	n, _ := f.File.Write(p[:len(p)/2])
	return n, errors.New("disk full")
}

// TestFilledLogStopsAfterShortWrite: once a write comes up short, the file's offset
// is not where the fill thinks, so no fill runs any more.
func TestFilledLogStopsAfterShortWrite(t *testing.T) {
	f, err := vfs.Default.Create(filepath.Join(t.TempDir(), "000009.log"), "test")
	if err != nil {
		t.Fatal(err)
	}
	l := walFS{chunk: 4 << 10, ahead: 1 << 20}.fillAhead(&shortFile{File: f}, 0)
	defer l.Close()
	if _, err := l.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Write(make([]byte, 100)); err == nil {
		t.Fatal("the short write did not fail")
	}
	l.mu.Lock()
	for l.filling {
		l.cond.Wait()
	}
	l.mu.Unlock()
	_, _ = l.Write(make([]byte, 100))
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped || l.filling {
		t.Fatalf("after a short write: stopped %v, filling %v", l.stopped, l.filling)
	}
}

// failingFill's WriteAt fails, as a fill's write on a full disk does.
type failingFill struct{ vfs.File }

func (failingFill) WriteAt([]byte, int64) (int, error) { return 0, errors.New("no space left") }

// TestFilledLogStopsAfterFailedFill: a fill that fails stops the fills, and Pebble's
// own writes go on, each byte in place.
func TestFilledLogStopsAfterFailedFill(t *testing.T) {
	name := filepath.Join(t.TempDir(), "000011.log")
	f, err := vfs.Default.Create(name, "test")
	if err != nil {
		t.Fatal(err)
	}
	l := walFS{chunk: 4 << 10, ahead: 1 << 20}.fillAhead(failingFill{f}, 0)
	rec := bytes.Repeat([]byte{7}, 100)
	for range 3 {
		if _, err := l.Write(rec); err != nil {
			t.Fatal(err)
		}
		l.mu.Lock()
		for l.filling {
			l.cond.Wait()
		}
		l.mu.Unlock()
	}
	l.mu.Lock()
	stopped, written := l.stopped, l.written
	l.mu.Unlock()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !stopped || written != 0 {
		t.Fatalf("after a failed fill: stopped %v, filled up to %d", stopped, written)
	}
	if got, _ := os.ReadFile(name); !bytes.Equal(got, bytes.Repeat(rec, 3)) {
		t.Fatalf("log holds %d bytes, want Pebble's 300 and nothing else", len(got))
	}
}

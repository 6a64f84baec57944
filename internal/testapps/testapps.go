// Package testapps builds the example apps (examples/apps) and test-only WAT modules
// for tests, so that `go test ./...` needs no make step. Builds are cached in
// <user cache dir>/circlegate-testapps, keyed by a hash of the sources and the Go
// version, and shared by every test package and run; concurrent builders write to a
// temporary file and rename it into place.
package testapps

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Build returns the wasm of the example app examples/apps/<name>: a Go app built
// with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared, or, if the directory holds
// <name>.wat, that file assembled with wat2wasm.
func Build(t testing.TB, name string) []byte {
	t.Helper()
	dir := filepath.Join(Root(t), "examples", "apps", name)
	if _, err := os.Stat(filepath.Join(dir, name+".wat")); err == nil {
		return BuildWAT(t, filepath.Join(dir, name+".wat"))
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("testapps: no example app %q: %v", name, err)
	}
	return BuildGo(t, dir)
}

// BuildGo returns the wasm of the Go package main in dir (a path relative to the
// test's working directory, or absolute; inside this module, e.g. a test guest in
// testdata), built as a reactor with GOOS=wasip1 GOARCH=wasm -buildmode=c-shared.
func BuildGo(t testing.TB, dir string) []byte {
	t.Helper()
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	srcs := append(sources(t, abs), sources(t, filepath.Join(Root(t), "sdk"))...)
	srcs = append(srcs, filepath.Join(Root(t), "go.mod"))
	return cached(t, filepath.Base(abs), srcs, func(out string) (string, []string) {
		return "go", []string{"build", "-buildmode=c-shared", "-trimpath", "-o", out, abs}
	})
}

// BuildWAT returns the wasm of a WAT file (a path relative to the test's working
// directory, or absolute), assembled with wat2wasm.
func BuildWAT(t testing.TB, path string) []byte {
	t.Helper()
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Fatalf("testapps: wat2wasm not found in PATH: install wabt (apt-get install wabt, brew install wabt) to build %s", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSuffix(filepath.Base(abs), ".wat")
	return cached(t, name, []string{abs}, func(out string) (string, []string) {
		return "wat2wasm", []string{"--enable-all", abs, "-o", out}
	})
}

// Root returns the repository root (the directory of go.mod).
func Root(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("testapps: cannot locate the source tree")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

var locks sync.Map // cache file -> *sync.Mutex, so one process builds each once

// cached returns the built file for these sources, building it with cmd if absent.
func cached(t testing.TB, name string, srcs []string, cmd func(out string) (string, []string)) []byte {
	t.Helper()
	path := filepath.Join(cacheDir(t), name+"-"+digest(t, srcs)+".wasm")
	mu, _ := locks.LoadOrStore(path, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if b, err := os.ReadFile(path); err == nil {
		return b
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), name+"-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	prog, args := cmd(tmp.Name())
	c := exec.Command(prog, args...)
	c.Dir = Root(t)
	c.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("testapps: building %s: %s %s: %v\n%s", name, prog, strings.Join(args, " "), err, out)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func cacheDir(t testing.TB) string {
	t.Helper()
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	dir := filepath.Join(base, "circlegate-testapps")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sources lists the .go files under dir.
func sources(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".go") {
			out = append(out, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// digest hashes the sources' paths and contents and the Go version.
func digest(t testing.TB, srcs []string) string {
	t.Helper()
	slices.Sort(srcs)
	h := sha256.New()
	h.Write([]byte(runtime.Version() + "\x00" + runtime.GOARCH + "\x00"))
	for _, p := range srcs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, err := filepath.Rel(filepath.Dir(filepath.Dir(p)), p)
		if err != nil {
			rel = p
		}
		h.Write([]byte(rel + "\x00"))
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// CompileCacheDir returns a wazero compilation cache directory shared by every test
// run (beside the built modules), so that tests do not compile the same module again:
// pass it as execution.EngineConfig.CacheDir. wazero writes it atomically.
func CompileCacheDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(cacheDir(t), "wazero")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

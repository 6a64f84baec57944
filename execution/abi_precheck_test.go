package execution

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Modules of a few bytes that claim huge vectors, names or locals: wazero would try
// to allocate gigabytes for each.
var hugeClaims = []struct {
	name, wasm, want string
}{
	{"exports", "\x00asm\x01\x00\x00\x00\x07\x06\xd7\xd7\xd7\x63xx", "vector of"},
	{"fuzzer's", "\x00asm\x01\x00\x00\x00\a0\xd7\xd7\xd7clegate_a\xd7", "runs past the end"},
	{"types", "\x00asm\x01\x00\x00\x00\x01\x05\xff\xff\xff\xff\x0f", "vector of"},
	{"export name", "\x00asm\x01\x00\x00\x00\x07\x07\x01\xff\xff\xff\xff\x0f\x00", "runs past the end"},
	{"import name", "\x00asm\x01\x00\x00\x00\x02\x08\x01\x01e\xff\xff\xff\xff\x0f", "runs past the end"},
	{"params", "\x00asm\x01\x00\x00\x00\x01\x07\x01\x60\xff\xff\xff\xff\x0f", "vector of"},
	{"locals", "\x00asm\x01\x00\x00\x00\x0a\x0a\x01\x08\x01\xff\xff\xff\xff\x0f\x7f\x0b", "locals"},
	{"data bytes", "\x00asm\x01\x00\x00\x00\x0b\x0a\x01\x00\x41\x00\x0b\xff\xff\xff\xff\x0f", "runs past the end"},
	{"elements", "\x00asm\x01\x00\x00\x00\x09\x0a\x01\x00\x41\x00\x0b\xff\xff\xff\xff\x0f", "vector of"},
	{"function names", "\x00asm\x01\x00\x00\x00\x00\x0d\x04name\x01\x06\xff\xff\xff\xff\x0f\x00", "vector of"},
	{"section size", "\x00asm\x01\x00\x00\x00\x01\xff\xff\xff\xff\x0f", "runs past the end"},
	{"magic", "\x00wasm\x01\x00\x00", "bad magic"},
}

func TestPrecheckRefusesHugeClaims(t *testing.T) {
	for _, tc := range hugeClaims {
		err := abiPrecheck([]byte(tc.wasm))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

// TestPrecheckAcceptsBuiltModules: every module the tests build passes (Go modules
// carry a name section, data segments, element segments and many locals).
func TestPrecheckAcceptsBuiltModules(t *testing.T) {
	dir, err := os.UserCacheDir()
	if err != nil {
		t.Skip(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "circlegate-testapps", "*.wasm"))
	if len(files) == 0 {
		t.Skip("no built modules yet")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := abiPrecheck(b); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}

func FuzzPrecheck(f *testing.F) {
	for _, tc := range hugeClaims {
		f.Add([]byte(tc.wasm))
	}
	f.Fuzz(func(t *testing.T, b []byte) { _ = abiPrecheck(b) })
}

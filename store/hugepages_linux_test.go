package store

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"
	"golang.org/x/sys/unix"
)

// hugeAdvised reports whether the mapping starting at addr carries the huge-page
// advice (the "hg" flag in /proc/self/smaps), and whether there is such a mapping.
func hugeAdvised(t *testing.T, addr uintptr) (advised, found bool) {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	want := fmt.Sprintf("%x-", addr)
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, want) {
			in = true
		}
		if in && strings.HasPrefix(line, "VmFlags:") {
			return strings.Contains(line+" ", " hg "), true
		}
	}
	return false, false
}

// hugeMappings returns the start of every mapping of the given length, and of those
// that carry the huge-page advice.
func hugeMappings(t *testing.T, length uintptr) (all, advised []uintptr) {
	t.Helper()
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		start, end, ok := anonymousRW(sc.Bytes())
		if !ok || end-start != length {
			continue
		}
		all = append(all, start)
		if adv, _ := hugeAdvised(t, start); adv {
			advised = append(advised, start)
		}
	}
	return all, advised
}

func TestAdviseHugeMappings(t *testing.T) {
	page := os.Getpagesize()
	const n = 4 << 20
	// mmap maps size bytes between two inaccessible pages, so that the kernel
	// cannot merge the mapping with a neighbour.
	mmap := func(size int) []byte {
		b, err := unix.Mmap(-1, 0, size+2*page, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = unix.Munmap(b) })
		if unix.Mprotect(b[:page], unix.PROT_NONE) != nil || unix.Mprotect(b[page+size:], unix.PROT_NONE) != nil {
			t.Fatal("mprotect")
		}
		return b[page : page+size]
	}
	block := mmap(n + page)      // what malloc maps for a block of n bytes
	stranger := mmap(3*n + page) // another size: left alone
	if adv, found := hugeAdvised(t, uintptr(unsafe.Pointer(&block[0]))); !found || adv {
		t.Fatalf("before: mapping found %v, advised %v; want found and not advised", found, adv)
	}
	if got := adviseHugeMappings(n); got < 1 {
		t.Fatalf("adviseHugeMappings(%d) advised %d mappings, want at least the test's", n, got)
	}
	if adv, _ := hugeAdvised(t, uintptr(unsafe.Pointer(&block[0]))); !adv {
		t.Fatal("the block's mapping is not advised for huge pages")
	}
	if adv, _ := hugeAdvised(t, uintptr(unsafe.Pointer(&stranger[0]))); adv {
		t.Fatal("a mapping of another size was advised too")
	}
	if got := adviseHugeMappings(1 << 20); got != 0 {
		t.Fatalf("a 1 MiB block holds no huge page, but %d mappings were advised", got)
	}
}

func TestAnonymousRW(t *testing.T) {
	for _, c := range []struct {
		line       string
		start, end uintptr
		ok         bool
	}{
		{"7f12a0000000-7f12a2001000 rw-p 00000000 00:00 0 ", 0x7f12a0000000, 0x7f12a2001000, true},
		{"7f12a0000000-7f12a2001000 rw-s 00000000 00:00 0", 0, 0, false}, // shared
		{"7f12a0000000-7f12a2001000 r--p 00000000 00:00 0", 0, 0, false}, // read-only
		{"7f12a0000000-7f12a2001000 rw-p 00000000 00:00 0 [heap]", 0, 0, false},
		{"7f12a0000000-7f12a2001000 rw-p 00000000 08:01 1234 /data/x", 0, 0, false},
		{"7f12a2001000-7f12a0000000 rw-p 00000000 00:00 0", 0, 0, false}, // reversed
		{"zz-7f12a2001000 rw-p 00000000 00:00 0", 0, 0, false},
		{"", 0, 0, false},
	} {
		s, e, ok := anonymousRW([]byte(c.line))
		if s != c.start || e != c.end || ok != c.ok {
			t.Errorf("anonymousRW(%q) = %x, %x, %v; want %x, %x, %v", c.line, s, e, ok, c.start, c.end, c.ok)
		}
	}
}

// TestPebbleMemTableHugePages checks that a full-size memtable's arena, allocated by
// Pebble with calloc (cgo) once the first flushes have grown memtables to their
// full size, is advised for huge pages.
func TestPebbleMemTableHugePages(t *testing.T) {
	const memtable = 4 << 20
	p, err := OpenPebble(PebbleConfig{Dir: t.TempDir(), CacheBytes: 2 << 20, MemTableBytes: memtable})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	value := make([]byte, 1024)
	write := func(from, mib int) {
		for i := range mib << 10 {
			if err := p.db.Set(fmt.Appendf(nil, "k%08d", from<<10+i), value, pebble.NoSync); err != nil {
				t.Fatal(err)
			}
		}
		if err := p.db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	write(0, 24) // 24 MiB: memtables double from 256 KiB to 4 MiB, and flush
	size := uintptr(memtable + os.Getpagesize())
	all, advised := hugeMappings(t, size)
	if len(all) == 0 {
		// Built without cgo, Pebble allocates arenas from the Go heap; with -race it
		// does so for half of the processes, at random.
		t.Skip("Pebble's memtable arenas are Go memory in this build, not mappings of their own")
	}
	// The arena is advised when a flush begins after it was allocated. How many
	// flushes begin before the first full-size arena depends on how fast they run
	// (under -race, sometimes none), so flush full memtables a few more times.
	for mib := 24; len(advised) == 0 && mib < 40; mib += 4 {
		write(mib, 4)
		all, advised = hugeMappings(t, size)
	}
	if len(advised) == 0 {
		t.Fatalf("%d mappings of a full memtable's %d bytes, none advised for huge pages", len(all), size)
	}
}

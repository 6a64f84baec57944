package store

import (
	"bufio"
	"bytes"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Pebble's memtable is a skiplist in one arena of memtable_bytes, allocated with C's
// calloc, which maps so large a block by itself, in 4 KiB pages. Every insert walks
// the skiplist through nodes scattered over the arena, so on this VM most of an
// insert's time went to TLB and cache misses. Where the system gives transparent
// huge pages on request (THP "madvise", as on Debian), asking for them on the arena
// maps it in 2 MiB pages instead: in alternating runs of the mutate benchmark,
// 7 to 14% less gateway CPU per mutation (docs/benchmarks.md). Pebble does not say
// where an arena is, so adviseHugeMappings finds it by its size among the process's
// anonymous mappings; advising a stranger of the same size would only make it
// eligible for huge pages too.

// adviseHugeMappings asks for transparent huge pages on every private anonymous
// read-write mapping of the process whose length is that of a block of n bytes from
// malloc (n plus malloc's header, rounded up to whole pages). It returns how many
// mappings it advised. Pages already touched stay as they are; those touched later
// come as huge pages where the mapping spans whole 2 MiB ranges.
func adviseHugeMappings(n int64) int {
	page := int64(os.Getpagesize())
	if n < 2<<20 {
		return 0 // too small to hold a huge page
	}
	lo, hi := n, (n+page-1)/page*page+page
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0
	}
	defer f.Close()
	var regions [][2]uintptr
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		start, end, ok := anonymousRW(sc.Bytes())
		if ok && int64(end-start) >= lo && int64(end-start) <= hi {
			regions = append(regions, [2]uintptr{start, end})
		}
	}
	advised := 0
	for _, r := range regions {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r[0], r[1]-r[0], unix.MADV_HUGEPAGE); errno == 0 {
			advised++
		}
	}
	return advised
}

// anonymousRW parses a line of /proc/self/maps ("start-end perms offset dev inode
// [path]") and reports the range if it is private, readable and writable, and maps
// no file (inode 0, no path, so not the stack or the heap either).
func anonymousRW(line []byte) (start, end uintptr, ok bool) {
	f := bytes.Fields(line)
	if len(f) != 5 || len(f[1]) != 4 || !bytes.HasPrefix(f[1], []byte("rw")) || f[1][3] != 'p' || string(f[4]) != "0" {
		return 0, 0, false
	}
	a, b, found := bytes.Cut(f[0], []byte("-"))
	if !found {
		return 0, 0, false
	}
	s, err1 := strconv.ParseUint(string(a), 16, 64)
	e, err2 := strconv.ParseUint(string(b), 16, 64)
	if err1 != nil || err2 != nil || e <= s {
		return 0, 0, false
	}
	return uintptr(s), uintptr(e), true
}

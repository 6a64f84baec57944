//go:build race

package rawio

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ioSync is what the race detector's edges from writes to reads go through, as in
// the syscall package: a write releases it (merging), a read acquires it.
var ioSync int64

// wrote tells the detector that the kernel read b and that what happened before the
// write happens before the reads that follow it.
func wrote(b []byte) {
	if len(b) > 0 {
		runtime.RaceReadRange(unsafe.Pointer(unsafe.SliceData(b)), len(b))
	}
	runtime.RaceReleaseMerge(unsafe.Pointer(&ioSync))
}

// wrotev is wrote for the buffers of iov.
func wrotev(iov []unix.Iovec) {
	for _, v := range iov {
		if v.Len > 0 {
			runtime.RaceReadRange(unsafe.Pointer(v.Base), int(v.Len))
		}
	}
	runtime.RaceReleaseMerge(unsafe.Pointer(&ioSync))
}

// read tells the detector that the kernel wrote b and that the writes before it
// happen before this read.
func read(b []byte) {
	if len(b) > 0 {
		runtime.RaceWriteRange(unsafe.Pointer(unsafe.SliceData(b)), len(b))
	}
	runtime.RaceAcquire(unsafe.Pointer(&ioSync))
}

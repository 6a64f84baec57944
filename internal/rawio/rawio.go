// Package rawio reads and writes non-blocking sockets with raw system calls: calls
// the scheduler does not hand the processor off around. A read or write of a socket
// that never blocks needs no hand-off, and while no processor is in a system call
// the runtime's monitor thread (sysmon) backs off to sleeping up to 10 ms, instead of
// waking every 20 µs to look. On the benchmark machine each of its wakes costs about
// 12 µs of CPU, and without these calls it took 14 to 21% of a busy process's CPU
// (docs/benchmarks.md, session 18).
//
// The calls retry EINTR. In race-detector builds they tell the detector what the
// syscall package tells it for its own reads and writes: that the kernel reads a
// write's buffers and writes a read's, and that a write happens before the reads
// after it, so that what flows through a socket between goroutines of one process
// is not reported as a race.
package rawio

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Read reads into b (not empty) from fd with read(2).
func Read(fd uintptr, b []byte) (int, syscall.Errno) {
	n, errno := call(unix.SYS_READ, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	read(b[:n])
	return int(n), 0
}

// Write writes b (not empty) to fd with write(2) and returns how much it took.
func Write(fd uintptr, b []byte) (int, syscall.Errno) {
	wrote(b)
	n, errno := call(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// Writev writes the buffers of iov (not empty) to fd with writev(2) and returns how
// much it took.
func Writev(fd uintptr, iov []unix.Iovec) (int, syscall.Errno) {
	wrotev(iov)
	n, errno := call(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(unsafe.SliceData(iov))), uintptr(len(iov)))
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// call makes a raw system call, again while it is interrupted.
func call(trap, a1, a2, a3 uintptr) (uintptr, syscall.Errno) {
	for {
		r, _, errno := unix.RawSyscall(trap, a1, a2, a3)
		if errno != unix.EINTR {
			return r, errno
		}
	}
}

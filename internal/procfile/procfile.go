// Package procfile reads small /proc and /proc/sys files (a pid's stat,
// the local port range) with plain system calls.
//
// Why not os.ReadFile: it also hands the file to Go's poller (which
// /proc/sys files accept), a handful of system calls more for a read that
// never blocks, on the way to a connection's first segment
// (docs/PERFORMANCE.md, "Route and guard"). What it must not do: read
// anything large (the whole file is read into memory) or anything that
// can block.
package procfile

import (
	"os"

	"golang.org/x/sys/unix"
)

// Read returns the contents of the file at path; errors are
// *os.PathError, as os.ReadFile's.
func Read(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	b := make([]byte, 0, 1024)
	for {
		n, err := unix.Read(fd, b[len(b):cap(b)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return b, nil
		}
		b = b[:len(b)+n]
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

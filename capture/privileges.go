package capture

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrNeedPrivileges is the error for a process that may not open packet or
// raw sockets or change the firewall. Its text is what the user reads;
// callers wrap it with what was attempted.
var ErrNeedPrivileges = errors.New("needs root or CAP_NET_RAW+CAP_NET_ADMIN")

// CheckPrivileges returns ErrNeedPrivileges unless the calling thread has
// both CAP_NET_RAW (AF_PACKET and raw sockets) and CAP_NET_ADMIN (the
// firewall rule) in its effective set. Root normally has both. Call it
// before anything changes the system, so a user without them gets one clear
// message instead of a half-done run.
//
// Capabilities are per thread in Linux; capget(2) on the caller's thread
// reports the set the following socket and iptables calls run with.
func CheckPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData // version 3 uses two 32-bit words
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("reading the process capabilities: %w", err)
	}
	effective := uint64(data[1].Effective)<<32 | uint64(data[0].Effective)
	for _, c := range []uint{unix.CAP_NET_RAW, unix.CAP_NET_ADMIN} {
		if effective&(1<<c) == 0 {
			return ErrNeedPrivileges
		}
	}
	return nil
}

// permissionError wraps err with ErrNeedPrivileges when it is EPERM or
// EACCES, the kernel's answer to a socket call made without the
// capabilities; otherwise it returns err as is.
func permissionError(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w (%w)", ErrNeedPrivileges, err)
	}
	return err
}

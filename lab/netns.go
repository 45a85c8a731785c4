package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread switched into the network namespace named ns
// (as in `ip netns`), then switches the thread back. Sockets that fn opens
// stay in ns for their whole life, wherever they are used afterwards.
//
// Only the calling goroutine's thread changes namespace: goroutines that fn
// starts run elsewhere, in the process's namespace. Hostname lookups inside
// fn may start such goroutines, so pass literal addresses.
func Do(ns string, fn func() error) error {
	if err := validNamespaceName(ns); err != nil {
		return fmt.Errorf("lab: namespace: %w", err)
	}
	target, err := unix.Open(filepath.Join(netnsDir, ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("lab: opening namespace %s: %w", ns, err)
	}
	defer unix.Close(target)

	// setns(2) changes the namespace of one thread; keep this goroutine on it.
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: opening this thread's network namespace: %w", err)
	}
	defer unix.Close(orig)

	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("lab: entering namespace %s: %w", ns, ErrNeedsPrivileges)
		}
		return fmt.Errorf("lab: entering namespace %s: %w", ns, err)
	}
	fnErr := fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the wrong namespace. Leave it locked: when
		// this goroutine exits, the Go runtime terminates a thread that is
		// still locked instead of handing it to other goroutines, which
		// would otherwise open sockets in ns without knowing it.
		return errors.Join(fnErr, fmt.Errorf("lab: returning from namespace %s: %w", ns, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// Command returns a command that runs name with args inside namespace ns
// (through `ip netns exec`, which also gives it the namespace's /etc/netns
// files). Killing it on ctx's end kills the program itself, since ip execs it.
func (l *Lab) Command(ctx context.Context, ns string, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Listen announces on the local network address inside namespace ns, like
// net.Listen. Connections it accepts belong to ns.
func (l *Lab) Listen(ns, network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := Do(ns, func() error {
		var err error
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: listen in %s: %w", ns, err)
	}
	return ln, nil
}

// Dial connects to addr from inside namespace ns, like net.Dialer.DialContext.
// addr should be a literal IP address and port.
func (l *Lab) Dial(ctx context.Context, ns, network, addr string) (net.Conn, error) {
	var conn net.Conn
	err := Do(ns, func() error {
		var d net.Dialer
		var err error
		conn, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: dial from %s: %w", ns, err)
	}
	return conn, nil
}

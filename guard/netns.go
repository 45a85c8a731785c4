package guard

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"golang.org/x/sys/unix"
)

// DefaultNetnsDir is where `ip netns` keeps named network namespaces.
const DefaultNetnsDir = "/run/netns"

// Report is what Sweep did in one network namespace.
type Report struct {
	// Namespace is the namespace's name under Firewall.NetnsDir, or "" for
	// the caller's own namespace when that has no name there.
	Namespace string
	// Removed lists the stale guards removed (see CleanupStale).
	Removed []string
	// Err is what went wrong in this namespace, if anything.
	Err error
}

// Namespaces lists the named network namespaces (the entries of
// f.NetnsDir, as `ip netns list` shows them), sorted; none when the
// directory does not exist.
func (f Firewall) Namespaces() ([]string, error) {
	entries, err := os.ReadDir(f.netnsDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing network namespaces: %w", err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// Sweep runs CleanupStale in several network namespaces. With no names it
// sweeps the caller's own namespace and every named one (each once: the
// caller's own is reported under its name when it has one); with names,
// exactly those. The reports come in that order, one per namespace looked
// at; the error joins theirs.
func (f Firewall) Sweep(ctx context.Context, names []string) ([]Report, error) {
	var reports []Report
	if len(names) == 0 {
		all, err := f.Namespaces()
		if err != nil {
			return nil, err
		}
		own, err := namespaceID("/proc/thread-self/ns/net")
		if err != nil {
			return nil, err
		}
		ownNamed := false
		for _, n := range all {
			if id, err := namespaceID(filepath.Join(f.netnsDir(), n)); err == nil && id == own {
				ownNamed = true
			}
		}
		if !ownNamed {
			removed, err := f.CleanupStale(ctx)
			reports = append(reports, Report{Removed: removed, Err: err})
		}
		names = all
	}
	var errs []error
	for _, n := range names {
		r := Report{Namespace: n}
		if err := validName(n); err != nil {
			r.Err = err
		} else {
			r.Err = inNamespace(filepath.Join(f.netnsDir(), n), func() error {
				var err error
				r.Removed, err = f.CleanupStale(ctx)
				return err
			})
		}
		if r.Err != nil {
			r.Err = fmt.Errorf("network namespace %s: %w", n, r.Err)
		}
		reports = append(reports, r)
	}
	for _, r := range reports {
		errs = append(errs, r.Err)
	}
	return reports, errors.Join(errs...)
}

func (f Firewall) netnsDir() string {
	if f.NetnsDir == "" {
		return DefaultNetnsDir
	}
	return f.NetnsDir
}

// validName refuses names that are not one directory entry.
func validName(n string) error {
	if n == "" || n == "." || n == ".." || filepath.Base(n) != n {
		return fmt.Errorf("%q is not a network namespace name", n)
	}
	return nil
}

// namespaceID identifies the namespace a file (a /proc ns link or a bind
// mount under /run/netns) refers to.
func namespaceID(path string) ([2]uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return [2]uint64{}, fmt.Errorf("network namespace %s: %w", path, err)
	}
	return [2]uint64{st.Dev, st.Ino}, nil
}

// inNamespace runs fn on an OS thread inside the network namespace at
// path. fn may open netlink sockets and start programs (iptables): both
// act in the namespace of the thread that makes them. The thread is a
// fresh goroutine's, locked to it; if it cannot be switched back it dies
// with the goroutine instead of serving others in the wrong namespace.
func inNamespace(path string, fn func() error) error {
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer unix.Close(target)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("opening this thread's network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("entering %s: %w", path, err)
			return
		}
		fnErr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Stay locked: the thread ends with this goroutine.
			done <- errors.Join(fnErr, fmt.Errorf("leaving %s: %w", path, err))
			return
		}
		runtime.UnlockOSThread()
		done <- fnErr
	}()
	return <-done
}

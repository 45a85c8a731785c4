package probe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/guard"
	"github.com/tcpcraft/tcpcraft/lab"
)

// DefaultKernelPort is the kernel's port when a script does not bind one:
// packetdrill's default local port.
const DefaultKernelPort = 8080

// Link is the packet path between tcpcraft and the kernel under test.
type Link interface {
	// Send injects one complete IPv4 packet.
	Send(pkt []byte) error
	// ReadFrame returns the next frame the kernel under test sent to
	// tcpcraft's address and port.
	ReadFrame(ctx context.Context) (capture.Frame, error)
}

// Env is where a script runs: the kernel under test, the link to it and
// the addresses on both ends.
type Env struct {
	// Kernel executes system calls and shell lines; nil when the kernel is
	// reachable by packets only (--target).
	Kernel Kernel
	Link   Link
	// Local is tcpcraft's address and port (packetdrill's "remote" end).
	Local netip.AddrPort
	// Peer is the kernel under test's address and PeerPort its port until
	// the script binds or connects another.
	Peer     netip.Addr
	PeerPort uint16
	// MTU of the path, for building packets.
	MTU int
	// Describe says in words where the script runs (for --verbose).
	Describe string
	// Namespaces are the network namespaces this Env created (and Close
	// removes).
	Namespaces []string

	closers []func() error
}

// Close undoes everything the Env set up, in reverse order: the kernel's
// helper, the capture, raw socket and guard rule, the namespaces. It is
// safe to call more than once and ignores ctx cancellation (clean-up runs
// on the way out of an interrupted run).
func (e *Env) Close() error {
	var errs []error
	for i := len(e.closers) - 1; i >= 0; i-- {
		if err := e.closers[i](); err != nil {
			errs = append(errs, err)
		}
	}
	e.closers = nil
	return errors.Join(errs...)
}

func (e *Env) onClose(f func() error) { e.closers = append(e.closers, f) }

// packetLink is a Link made of a capture, a raw socket and the guard rule.
type packetLink struct {
	cap *capture.Capture
	inj *capture.Injector
}

func (l *packetLink) Send(pkt []byte) error { return l.inj.Send(pkt) }
func (l *packetLink) ReadFrame(ctx context.Context) (capture.Frame, error) {
	return l.cap.ReadFrame(ctx)
}

// inNamespace runs fn in namespace ns, or right here when ns is "".
func inNamespace(ns string, fn func() error) error {
	if ns == "" {
		return fn()
	}
	return lab.Do(ns, fn)
}

// openLink sets up tcpcraft's end in namespace ns ("" = the current one):
// the route to peer, a port outside ip_local_port_range, the RST guard for
// that port, the capture of the flow from peer and the raw socket.
func (e *Env) openLink(ctx context.Context, ns string, peer netip.Addr) error {
	return inNamespace(ns, func() error {
		route, err := capture.LookupRoute(peer)
		if err != nil {
			return fmt.Errorf("no route to %v: %w", peer, err)
		}
		if !route.Source.Is4() {
			return fmt.Errorf("route to %v: no IPv4 source address", peer)
		}
		rng := mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
		port, err := capture.EphemeralPort(rng)
		if err != nil {
			return err
		}
		e.Local = netip.AddrPortFrom(route.Source, port)
		e.MTU = route.MTU
		g, err := guard.Install(ctx, e.Local)
		if err != nil {
			return err
		}
		// The rule lives in ns's firewall: remove it from there.
		e.onClose(func() error {
			return inNamespace(ns, func() error { return g.Remove(context.Background()) })
		})
		cp, err := capture.Open(route.Index, capture.Flow{Local: e.Local, Remote: netip.AddrPortFrom(peer, 0)}, capture.Config{})
		if err != nil {
			return err
		}
		e.onClose(cp.Close)
		inj, err := capture.OpenInjector()
		if err != nil {
			return err
		}
		e.onClose(inj.Close)
		e.Link = &packetLink{cap: cp, inj: inj}
		return nil
	})
}

// startKernel starts the system-call executor for namespace ns: the helper
// process when helper is set, else an in-process executor.
func (e *Env) startKernel(ns string, helper []string) error {
	if helper == nil {
		k := NewInProcessKernel(ns)
		e.Kernel = k
		e.onClose(k.Close)
		return nil
	}
	k, err := StartHelper(ns, helper)
	if err != nil {
		return err
	}
	e.Kernel = k
	e.onClose(k.Close)
	return nil
}

// LabNames returns a lab configuration with names no other namespace on
// this machine uses: tcprobe-PID-RANDOM-tcpcraft / -kernel, veth
// tcpbRANDOMt / k. The addresses are the lab's: the kernel under test is
// the "server" (10.0.2.20), tcpcraft the "client" (10.0.2.21).
func LabNames() (lab.Config, error) {
	for range 10 {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return lab.Config{}, err
		}
		id := hex.EncodeToString(b[:])
		cfg := lab.DefaultConfig()
		base := fmt.Sprintf("tcprobe-%d-%s", os.Getpid(), id)
		cfg.ClientNS, cfg.ServerNS = base+"-tcpcraft", base+"-kernel"
		cfg.ClientIf, cfg.ServerIf = "tcpb"+id+"t", "tcpb"+id+"k"
		if _, err := os.Stat("/run/netns/" + cfg.ClientNS); err == nil {
			continue
		}
		if _, err := os.Stat("/run/netns/" + cfg.ServerNS); err == nil {
			continue
		}
		return cfg, nil
	}
	return lab.Config{}, errors.New("10 random namespace names in a row were taken")
}

// NewLabEnv builds a throwaway namespace pair: the kernel under test lives
// in one (its system calls run there in a helper process started with
// helper, or in-process when helper is nil), tcpcraft's packet engine in
// the other. Close removes both namespaces. On error nothing is left.
func NewLabEnv(ctx context.Context, helper []string) (env *Env, err error) {
	cfg, err := LabNames()
	if err != nil {
		return nil, err
	}
	env = &Env{PeerPort: DefaultKernelPort, Namespaces: []string{cfg.ClientNS, cfg.ServerNS}}
	defer func() {
		if err != nil {
			env.Close()
			env = nil
		}
	}()
	// Registered first, so it runs last: the namespaces go after the
	// sockets and the helper in them.
	env.onClose(func() error {
		downCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return lab.Down(downCtx, cfg)
	})
	l, err := lab.Up(ctx, cfg)
	if err != nil {
		return env, err
	}
	if err := widenLabMTU(ctx, cfg); err != nil {
		return env, err
	}
	env.Peer = l.ServerIP()
	env.Describe = fmt.Sprintf("kernel under test in namespace %s (%v), tcpcraft in %s (%v)", cfg.ServerNS, l.ServerIP(), cfg.ClientNS, l.ClientIP())
	if err := env.openLink(ctx, cfg.ClientNS, env.Peer); err != nil {
		return env, err
	}
	if err := env.startKernel(cfg.ServerNS, helper); err != nil {
		return env, err
	}
	return env, nil
}

// NewPeerEnv uses the kernel of the existing namespace ns as the kernel
// under test; tcpcraft's end stays in the current namespace. The kernel's
// address is peer if valid, else the first IPv4 address in ns that is
// reachable from here.
func NewPeerEnv(ctx context.Context, ns string, peer netip.Addr, helper []string) (env *Env, err error) {
	if _, err := os.Stat("/run/netns/" + ns); err != nil {
		return nil, fmt.Errorf("network namespace %q: %w", ns, err)
	}
	env = &Env{PeerPort: DefaultKernelPort}
	defer func() {
		if err != nil {
			env.Close()
			env = nil
		}
	}()
	if !peer.IsValid() {
		if peer, err = reachableAddr(ns); err != nil {
			return env, err
		}
	}
	env.Peer = peer
	env.Describe = fmt.Sprintf("kernel under test in namespace %s (%v)", ns, peer)
	if err := env.openLink(ctx, "", peer); err != nil {
		return env, err
	}
	if err := env.startKernel(ns, helper); err != nil {
		return env, err
	}
	return env, nil
}

// reachableAddr finds an IPv4 address of namespace ns that the current
// namespace routes to without it being one of its own.
func reachableAddr(ns string) (netip.Addr, error) {
	var addrs []netip.Addr
	err := lab.Do(ns, func() error {
		ifaddrs, err := net.InterfaceAddrs()
		if err != nil {
			return err
		}
		for _, a := range ifaddrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() {
				addrs = append(addrs, p.Addr())
			}
		}
		return nil
	})
	if err != nil {
		return netip.Addr{}, err
	}
	var tried []string
	for _, a := range addrs {
		r, err := capture.LookupRoute(a)
		if err == nil && !r.Local {
			return a, nil
		}
		tried = append(tried, a.String())
	}
	if len(tried) == 0 {
		return netip.Addr{}, fmt.Errorf("namespace %s has no IPv4 address", ns)
	}
	return netip.Addr{}, fmt.Errorf("none of the addresses of namespace %s (%s) is reachable from here", ns, strings.Join(tried, ", "))
}

// NewTargetEnv probes target by packets only: no system calls, no shell
// lines. tcpcraft's end is in the current namespace.
func NewTargetEnv(ctx context.Context, target netip.AddrPort) (env *Env, err error) {
	if !target.Addr().Is4() {
		return nil, fmt.Errorf("target %v: only IPv4 is supported", target)
	}
	env = &Env{Peer: target.Addr(), PeerPort: target.Port(), Describe: fmt.Sprintf("target %v (packets only)", target)}
	if err := env.openLink(ctx, "", target.Addr()); err != nil {
		env.Close()
		return nil, err
	}
	return env, nil
}

// widenLabMTU lets tcpcraft send segments larger than 1500 bytes to the
// kernel under test, as packetdrill's tun device does (a script may send
// one 2000-byte segment and expect one ACK for it), while the kernel still
// sees a 1500-byte path for what it sends and advertises (MSS 1460): both
// veth ends get the largest MTU, and the kernel's route to the lab subnet
// keeps mtu 1500.
func widenLabMTU(ctx context.Context, cfg lab.Config) error {
	subnet := cfg.ServerAddr.Masked()
	steps := [][]string{
		{"-n", cfg.ClientNS, "link", "set", "dev", cfg.ClientIf, "mtu", "65535"},
		{"-n", cfg.ServerNS, "link", "set", "dev", cfg.ServerIf, "mtu", "65535"},
		{"-n", cfg.ServerNS, "route", "replace", subnet.String(), "dev", cfg.ServerIf, "proto", "kernel",
			"scope", "link", "src", cfg.ServerAddr.Addr().String(), "mtu", "1500"},
	}
	for _, args := range steps {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// SweepStale removes namespaces left by tcpcraft probe runs that were
// killed before they could clean up (SIGKILL, a crash): tcprobe-PID-*
// whose process no longer exists. Namespaces of live runs are kept. It
// returns the names removed.
func SweepStale(ctx context.Context) ([]string, error) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "tcprobe-")
		if !ok {
			continue
		}
		pid, _, ok := strings.Cut(rest, "-")
		if !ok || pid == "" || strings.Trim(pid, "0123456789") != "" {
			continue
		}
		if _, err := os.Stat("/proc/" + pid); err == nil {
			continue // its run is still going
		}
		if out, err := exec.CommandContext(ctx, "ip", "netns", "delete", e.Name()).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns delete %s: %v: %s", e.Name(), err, strings.TrimSpace(string(out))))
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

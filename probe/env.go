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
	// AnyPort is set when tcpcraft's end owns its address outright (a
	// namespace of its own): every port of it is guarded and captured, so
	// each new incoming connection gets a fresh port, as packetdrill's
	// do; otherwise tcpcraft keeps the one port of Local.
	AnyPort bool
	// WholePackets is set when the Link takes a packet of any size
	// whole (packetdrill's tun device): tcpcraft then never cuts a long
	// inbound segment to the MTU, as packetdrill does not.
	WholePackets bool

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
		if route.Source.Is4() != peer.Is4() {
			return fmt.Errorf("route to %v: no source address of its family", peer)
		}
		rng := mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
		port, err := capture.EphemeralPort(rng)
		if err != nil {
			return err
		}
		e.Local = netip.AddrPortFrom(route.Source, port)
		e.MTU = route.MTU
		scope := guard.Scope{Addrs: []netip.Addr{route.Source}, PortLow: port, PortHigh: port}
		flow := capture.Flow{Local: e.Local, Remote: netip.AddrPortFrom(peer, 0)}
		if e.AnyPort {
			// The namespace is tcpcraft's alone: guard and capture
			// every port of its address.
			scope.PortLow, scope.PortHigh = 1, 65535
		}
		g, err := guard.InstallScope(ctx, scope)
		if err != nil {
			return err
		}
		// The rule lives in ns's firewall: remove it from there.
		e.onClose(func() error {
			return inNamespace(ns, func() error { return g.Remove(context.Background()) })
		})
		var cp *capture.Capture
		if e.AnyPort {
			cp, err = capture.OpenScope(route.Index, capture.Scope{Local: []netip.Addr{route.Source}, PortLow: 1, PortHigh: 65535}, capture.Config{})
		} else {
			cp, err = capture.Open(route.Index, flow, capture.Config{})
		}
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
// tcpbRANDOMt / k. NewPacketdrillEnv uses the kernel's namespace only.
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

// NewLabEnv is NewPacketdrillEnv with packetdrill's default settings.
func NewLabEnv(ctx context.Context, helper []string) (*Env, error) {
	return NewPacketdrillEnv(ctx, helper, Settings{})
}

// KernelInterface is the name of the kernel under test's interface, as
// packetdrill's tun device: scripts name it (`tc qdisc add dev tun0 ...`).
const KernelInterface = "tun0"

// NewPacketdrillEnv builds packetdrill's local-mode test bed in a
// throwaway namespace: the kernel under test has the tun device tun0,
// which tcpcraft holds (see tunLink), with --local_ip in its subnet
// (--netmask_ip; /48 for IPv6) and the MTU --mtu, and reaches tcpcraft's
// --remote_ip through --gateway_ip (a direct route when the gateway is
// outside its subnet). tcpcraft's end is no host at all, only the other
// side of the device: nothing there answers for --remote_ip, so no
// firewall rule is needed. System calls run in a helper process started
// with helper in the kernel's namespace, or in-process when helper is nil.
// Close removes the namespace (and the device with it). On error nothing
// is left.
func NewPacketdrillEnv(ctx context.Context, helper []string, set Settings) (env *Env, err error) {
	local, remote, gateway, err := set.Addrs()
	if err != nil {
		return nil, err
	}
	cfg, err := LabNames()
	if err != nil {
		return nil, err
	}
	k := cfg.ServerNS
	env = &Env{PeerPort: DefaultKernelPort, Namespaces: []string{k}, AnyPort: true, WholePackets: true}
	defer func() {
		if err != nil {
			env.Close()
			env = nil
		}
	}()
	run := func(args ...string) error {
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run("netns", "add", k); err != nil {
		return env, err
	}
	// Registered first, so it runs last: the namespace goes after the
	// device, the capture and the helper in it.
	env.onClose(func() error {
		downCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(downCtx, "ip", "netns", "delete", k).CombinedOutput(); err != nil {
			return fmt.Errorf("ip netns delete %s: %v: %s", k, err, strings.TrimSpace(string(out)))
		}
		return nil
	})
	mtu := set.MTU
	if mtu == 0 {
		mtu = 1500
	}
	six := local.Addr().Is6()
	host := 32
	nodad := []string{}
	if six {
		host = 128
		nodad = []string{"nodad"}
	}
	remotePrefix := netip.PrefixFrom(remote, host)
	if set.RemotePrefix >= 0 && set.RemoteIP.IsValid() {
		remotePrefix = netip.PrefixFrom(remote, set.RemotePrefix).Masked()
	}
	tun, err := openTun(k, KernelInterface)
	if err != nil {
		return env, err
	}
	steps := [][]string{
		{"-n", k, "link", "set", "lo", "up"},
		// The device's MTU is the path's, as packetdrill sets it; the
		// tun driver takes tcpcraft's larger packets whole all the same.
		{"-n", k, "link", "set", "dev", KernelInterface, "mtu", fmt.Sprint(mtu), "up"},
		append([]string{"-n", k, "addr", "add", local.String(), "dev", KernelInterface}, nodad...),
	}
	// tun0 is a layer-3 device without neighbour resolution: a route
	// through any gateway of the subnet (`ip route change ... via
	// 192.168.0.2` in a script) works with nobody there.
	if local.Contains(gateway) {
		steps = append(steps, []string{"-n", k, "route", "add", remotePrefix.String(), "via", gateway.String(), "dev", KernelInterface})
	} else {
		steps = append(steps, []string{"-n", k, "route", "add", remotePrefix.String(), "dev", KernelInterface})
	}
	for _, args := range steps {
		if err := run(args...); err != nil {
			tun.Close()
			return env, err
		}
	}
	var index int
	err = lab.Do(k, func() error {
		ifc, err := net.InterfaceByName(KernelInterface)
		if err == nil {
			index = ifc.Index
		}
		return err
	})
	if err != nil {
		tun.Close()
		return env, fmt.Errorf("%s: %w", KernelInterface, err)
	}
	link, err := newTunLink(k, tun, index, remote, set.MSS)
	if err != nil {
		tun.Close()
		return env, err
	}
	env.onClose(link.Close)
	env.Link = link
	rng := mrand.New(mrand.NewPCG(mrand.Uint64(), mrand.Uint64()))
	port, err := capture.EphemeralPort(rng)
	if err != nil {
		return env, err
	}
	env.Local = netip.AddrPortFrom(remote, port)
	env.MTU = mtu
	env.Peer = local.Addr()
	env.Describe = fmt.Sprintf("kernel under test in namespace %s (%s %v mtu %d, route to %v), tcpcraft on the other side of %s (%v)",
		k, KernelInterface, local, mtu, remotePrefix, KernelInterface, remote)
	if err := env.startKernel(k, helper); err != nil {
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
			if _, statErr := os.Stat("/run/netns/" + e.Name()); errors.Is(statErr, os.ErrNotExist) {
				continue // removed meanwhile by whoever made it
			}
			errs = append(errs, fmt.Errorf("ip netns delete %s: %v: %s", e.Name(), err, strings.TrimSpace(string(out))))
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// Package lab builds, inspects and removes tcpcraft's two-namespace lab: a
// client and a server network namespace joined by a veth pair, where tcpcraft
// meets real Linux kernel peers without touching the host's own network.
//
// The lab is driven through iproute2 (the `ip` command) and, for code that must
// open sockets inside a namespace, through setns(2) on a locked OS thread (Do).
//
// What this package must not do: create or change anything in the root
// network namespace (the veth pair is created directly inside the two lab
// namespaces), send packets, or keep any state of its own between calls — the
// kernel is the only record of what exists.
package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// Default names and addresses of the lab (README, "A quick tour":
// server 10.0.2.20 and fd00:2::20, client 10.0.2.21 and fd00:2::21).
const (
	DefaultClientNS = "tcpcraft-client"
	DefaultServerNS = "tcpcraft-server"
	DefaultClientIf = "tcv-client"
	DefaultServerIf = "tcv-server"
)

// maxIfNameLen is the longest interface name Linux accepts (IFNAMSIZ-1).
const maxIfNameLen = 15

// Config names the pieces of a lab. The zero value is not usable; start from
// DefaultConfig and override what you need.
type Config struct {
	ClientNS, ServerNS string       // network namespace names (as in `ip netns`)
	ClientIf, ServerIf string       // the two ends of the veth pair, one per namespace
	ClientAddr         netip.Prefix // address of ClientIf, e.g. 10.0.2.21/24
	ServerAddr         netip.Prefix // address of ServerIf, e.g. 10.0.2.20/24
	// ClientAddr6 and ServerAddr6 are the IPv6 addresses beside them
	// (e.g. fd00:2::21/64, fd00:2::20/64), added without duplicate
	// address detection (nodad) so they are usable at once; the zero
	// Prefix for both means an IPv4-only lab.
	ClientAddr6, ServerAddr6 netip.Prefix
}

// DefaultConfig returns the lab every tcpcraft command uses unless told
// otherwise: tcpcraft-client (10.0.2.21/24, fd00:2::21/64) and
// tcpcraft-server (10.0.2.20/24, fd00:2::20/64).
func DefaultConfig() Config {
	return Config{
		ClientNS:    DefaultClientNS,
		ServerNS:    DefaultServerNS,
		ClientIf:    DefaultClientIf,
		ServerIf:    DefaultServerIf,
		ClientAddr:  netip.MustParsePrefix("10.0.2.21/24"),
		ServerAddr:  netip.MustParsePrefix("10.0.2.20/24"),
		ClientAddr6: netip.MustParsePrefix("fd00:2::21/64"),
		ServerAddr6: netip.MustParsePrefix("fd00:2::20/64"),
	}
}

// HasIPv6 reports whether the lab has IPv6 addresses.
func (c Config) HasIPv6() bool { return c.ClientAddr6.IsValid() || c.ServerAddr6.IsValid() }

// Validate reports the first thing in c that would make Up fail or build a
// lab in which the two ends cannot reach each other.
func (c Config) Validate() error {
	for _, ns := range []struct{ what, name string }{{"client namespace", c.ClientNS}, {"server namespace", c.ServerNS}} {
		if err := validNamespaceName(ns.name); err != nil {
			return fmt.Errorf("lab: %s: %w", ns.what, err)
		}
	}
	if c.ClientNS == c.ServerNS {
		return fmt.Errorf("lab: client and server namespace are both %q; they must differ", c.ClientNS)
	}
	for _, ifc := range []struct{ what, name string }{{"client interface", c.ClientIf}, {"server interface", c.ServerIf}} {
		if err := validInterfaceName(ifc.name); err != nil {
			return fmt.Errorf("lab: %s: %w", ifc.what, err)
		}
	}
	if c.ClientIf == c.ServerIf {
		// Both ends are created by one `ip link add`, which refuses equal names.
		return fmt.Errorf("lab: client and server interface are both %q; they must differ", c.ClientIf)
	}
	for _, a := range []struct {
		what string
		p    netip.Prefix
	}{{"client address", c.ClientAddr}, {"server address", c.ServerAddr}} {
		if !a.p.IsValid() || !a.p.Addr().Is4() {
			return fmt.Errorf("lab: %s %q: want an IPv4 address with prefix length, like 10.0.2.21/24", a.what, a.p)
		}
		if a.p.Bits() > 30 {
			return fmt.Errorf("lab: %s %s: prefix /%d leaves no room for two hosts", a.what, a.p, a.p.Bits())
		}
	}
	if c.ClientAddr.Addr() == c.ServerAddr.Addr() {
		return fmt.Errorf("lab: client and server address are both %s", c.ClientAddr.Addr())
	}
	if c.ClientAddr.Masked() != c.ServerAddr.Masked() {
		return fmt.Errorf("lab: client %s and server %s are not in one subnet; the veth link has no router", c.ClientAddr, c.ServerAddr)
	}
	if !c.HasIPv6() {
		return nil
	}
	for _, a := range []struct {
		what string
		p    netip.Prefix
	}{{"client IPv6 address", c.ClientAddr6}, {"server IPv6 address", c.ServerAddr6}} {
		if !a.p.IsValid() || !a.p.Addr().Is6() || a.p.Addr().Is4In6() || a.p.Addr().Zone() != "" {
			return fmt.Errorf("lab: %s %q: want an IPv6 address with prefix length, like fd00:2::21/64 (or neither IPv6 address)", a.what, a.p)
		}
		if a.p.Addr().IsLinkLocalUnicast() || a.p.Addr().IsMulticast() || a.p.Addr().IsUnspecified() || a.p.Addr().IsLoopback() {
			return fmt.Errorf("lab: %s %s: want a global or unique local unicast address", a.what, a.p)
		}
		if a.p.Bits() > 126 {
			return fmt.Errorf("lab: %s %s: prefix /%d leaves no room for two hosts", a.what, a.p, a.p.Bits())
		}
	}
	if c.ClientAddr6.Addr() == c.ServerAddr6.Addr() {
		return fmt.Errorf("lab: client and server IPv6 address are both %s", c.ClientAddr6.Addr())
	}
	if c.ClientAddr6.Masked() != c.ServerAddr6.Masked() {
		return fmt.Errorf("lab: client %s and server %s are not in one subnet; the veth link has no router", c.ClientAddr6, c.ServerAddr6)
	}
	return nil
}

func validNamespaceName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case name == "." || name == ".." || strings.ContainsAny(name, "/\x00"):
		// The name becomes a file under /run/netns.
		return fmt.Errorf("%q is not usable as a file name under /run/netns", name)
	case strings.ContainsFunc(name, isSpaceOrControl):
		return fmt.Errorf("%q contains white space or control characters", name)
	}
	return nil
}

func validInterfaceName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len(name) > maxIfNameLen:
		return fmt.Errorf("%q is %d bytes; Linux allows at most %d", name, len(name), maxIfNameLen)
	case name == "." || name == ".." || strings.ContainsAny(name, "/:\x00"):
		// dev_valid_name() in the kernel rejects these.
		return fmt.Errorf("%q is not a valid interface name", name)
	case strings.ContainsFunc(name, isSpaceOrControl):
		return fmt.Errorf("%q contains white space or control characters", name)
	}
	return nil
}

func isSpaceOrControl(r rune) bool { return r <= ' ' || r == 0x7f }

// Lab is a lab that Up has brought up.
type Lab struct {
	Config
	// Changes lists, in order and in words, what the Up call that returned
	// this Lab changed on the system; it is empty when everything was
	// already in place.
	Changes []string
}

// ClientIP is the client namespace's address, e.g. 10.0.2.21.
func (l *Lab) ClientIP() netip.Addr { return l.ClientAddr.Addr() }

// ServerIP is the server namespace's address, e.g. 10.0.2.20.
func (l *Lab) ServerIP() netip.Addr { return l.ServerAddr.Addr() }

// ClientIP6 is the client namespace's IPv6 address, e.g. fd00:2::21
// (invalid in an IPv4-only lab).
func (l *Lab) ClientIP6() netip.Addr { return l.ClientAddr6.Addr() }

// ServerIP6 is the server namespace's IPv6 address, e.g. fd00:2::20.
func (l *Lab) ServerIP6() netip.Addr { return l.ServerAddr6.Addr() }

// Up makes the lab described by cfg exist and returns it. It is idempotent:
// namespaces, the veth pair, addresses and link states that are already right
// are reused, wrong or half-made pieces are fixed, nothing is duplicated.
// If a step fails, everything this call created or changed is undone before
// the error is returned, so a failed Up leaves the system as it found it
// (a stale half veth that Up removed in order to recreate it stays removed).
//
// Up checks the configuration, the `ip` command and the privileges (root or
// CAP_NET_ADMIN and CAP_SYS_ADMIN) before it changes anything.
func Up(ctx context.Context, cfg Config) (lab *Lab, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := CheckPrivileges(); err != nil {
		return nil, err
	}
	ip, err := newIPTool()
	if err != nil {
		return nil, err
	}
	before, err := status(ctx, ip, cfg)
	if err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}

	u := &upRun{ctx: ctx, ip: ip}
	defer func() {
		if err != nil {
			if undoErr := u.rollback(); undoErr != nil {
				err = fmt.Errorf("%w; undoing the partial lab also failed: %w", err, undoErr)
			}
			lab = nil
		}
	}()

	for _, side := range []Side{before.Client, before.Server} {
		if side.NamespaceExists {
			continue
		}
		if err := u.do([]string{"netns", "add", side.Namespace}, []string{"netns", "delete", side.Namespace},
			"created namespace "+side.Namespace); err != nil {
			return nil, fmt.Errorf("lab up: %w", err)
		}
	}

	if err := u.vethPair(cfg, before); err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}

	// Read the state again: a veth pair made just now has no addresses and
	// is down, whatever the stale one before it had.
	cur, err := status(ctx, ip, cfg)
	if err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}
	// Links up first, addresses after: an IPv6 address added to a link
	// that is down leaves the first packets sent to its peer after the
	// link comes up waiting about a second (seen with paced probes), where
	// one added to a link that is up works at once.
	for _, l := range []struct {
		ns   string
		link Link
	}{
		{cfg.ClientNS, cur.Client.Loopback},
		{cfg.ServerNS, cur.Server.Loopback},
		{cfg.ClientNS, cur.Client.Interface},
		{cfg.ServerNS, cur.Server.Interface},
	} {
		if l.link.Exists && l.link.Up {
			continue
		}
		if l.link.Name != "lo" {
			// Its link-local address too must be usable at once, not
			// tentative for a second or two after the link comes up:
			// neighbour discovery waits for it, and the first IPv6
			// packets to the peer wait with it (RFC 4862 §5.4).
			if err := noDAD(l.ns, l.link.Name); err != nil {
				return nil, fmt.Errorf("lab up: %w", err)
			}
		}
		if err := u.do(
			[]string{"-n", l.ns, "link", "set", "dev", l.link.Name, "up"},
			[]string{"-n", l.ns, "link", "set", "dev", l.link.Name, "down"},
			fmt.Sprintf("set %s up in %s", l.link.Name, l.ns)); err != nil {
			return nil, fmt.Errorf("lab up: %w", err)
		}
	}

	for _, side := range []struct {
		ns, dev string
		addr    netip.Prefix
		link    Link
	}{
		{cfg.ClientNS, cfg.ClientIf, cfg.ClientAddr, cur.Client.Interface},
		{cfg.ServerNS, cfg.ServerIf, cfg.ServerAddr, cur.Server.Interface},
		{cfg.ClientNS, cfg.ClientIf, cfg.ClientAddr6, cur.Client.Interface},
		{cfg.ServerNS, cfg.ServerIf, cfg.ServerAddr6, cur.Server.Interface},
	} {
		if !side.addr.IsValid() || side.link.HasAddr(side.addr) {
			continue
		}
		p := side.addr.String()
		add := []string{"-n", side.ns, "addr", "add", p, "dev", side.dev}
		if side.addr.Addr().Is6() {
			// Without duplicate address detection the address is
			// usable at once, not "tentative" for a second or two
			// (RFC 4862 §5.4): nothing else is on this veth.
			add = append(add, "nodad")
		}
		if err := u.do(
			add,
			[]string{"-n", side.ns, "addr", "del", p, "dev", side.dev},
			fmt.Sprintf("added %s to %s in %s", p, side.dev, side.ns)); err != nil {
			return nil, fmt.Errorf("lab up: %w", err)
		}
	}

	after, err := status(ctx, ip, cfg)
	if err != nil {
		return nil, fmt.Errorf("lab up: checking the result: %w", err)
	}
	if problems := after.Problems(); len(problems) > 0 {
		return nil, fmt.Errorf("lab up: the lab is still not right after setting it up: %s", strings.Join(problems, "; "))
	}
	return &Lab{Config: cfg, Changes: u.changes}, nil
}

// noDAD turns duplicate address detection off on dev in namespace ns,
// before the link comes up (the setting goes with the device).
func noDAD(ns, dev string) error {
	return Do(ns, func() error {
		path := filepath.Join("/proc/sys/net/ipv6/conf", dev, "accept_dad")
		if err := os.WriteFile(path, []byte("0\n"), 0); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("turning off duplicate address detection on %s in %s: %w", dev, ns, err)
		}
		return nil
	})
}

// upRun records what one Up call changed so that a failure can undo it.
type upRun struct {
	ctx     context.Context
	ip      ipTool
	undo    [][]string // ip arguments that reverse each change, in order of the changes
	changes []string
}

// do runs `ip args...`; once it has succeeded, undoArgs reverses it.
func (u *upRun) do(args, undoArgs []string, change string) error {
	if _, err := u.ip.run(u.ctx, args...); err != nil {
		return err
	}
	if undoArgs != nil {
		u.undo = append(u.undo, undoArgs)
	}
	u.changes = append(u.changes, change)
	return nil
}

// vethPair makes ClientIf (in ClientNS) and ServerIf (in ServerNS) exist as
// the two ends of one veth pair.
func (u *upRun) vethPair(cfg Config, before Snapshot) error {
	c, s := before.Client.Interface, before.Server.Interface
	for _, l := range []struct {
		ns   string
		link Link
	}{{cfg.ClientNS, c}, {cfg.ServerNS, s}} {
		if l.link.Exists && l.link.Kind != "veth" {
			return fmt.Errorf("%s in namespace %s exists but is a %q device, not veth; remove it or choose another name",
				l.link.Name, l.ns, l.link.Kind)
		}
	}
	if c.Exists && s.Exists && before.Peered() {
		return nil
	}
	// A half pair (one end missing or peered elsewhere) is stale: deleting a
	// veth end deletes its peer too, then the pair is made afresh.
	for _, l := range []struct {
		ns   string
		link Link
	}{{cfg.ClientNS, c}, {cfg.ServerNS, s}} {
		if !l.link.Exists {
			continue
		}
		if err := u.do([]string{"-n", l.ns, "link", "del", "dev", l.link.Name}, nil,
			fmt.Sprintf("removed stale veth end %s from %s", l.link.Name, l.ns)); err != nil {
			// The end may already be gone: with the first deletion
			// (its peer), or because the kernel was still tearing
			// down a deleted namespace when we looked (that cleanup
			// is asynchronous: "RTNETLINK answers: No such device").
			if !deviceGone(err) {
				return err
			}
		}
	}
	// Created directly inside the two namespaces, so the root namespace never
	// sees these names (and labs with equal interface names cannot collide).
	return u.do(
		[]string{"link", "add", cfg.ClientIf, "netns", cfg.ClientNS, "type", "veth", "peer", "name", cfg.ServerIf, "netns", cfg.ServerNS},
		[]string{"-n", cfg.ClientNS, "link", "del", "dev", cfg.ClientIf},
		fmt.Sprintf("created veth pair %s (%s) <-> %s (%s)", cfg.ClientIf, cfg.ClientNS, cfg.ServerIf, cfg.ServerNS))
}

// rollback undoes the recorded changes, newest first.
func (u *upRun) rollback() error {
	// The caller's context may be what failed; undo must still run.
	ctx := context.WithoutCancel(u.ctx)
	var errs []error
	for i := len(u.undo) - 1; i >= 0; i-- {
		args := u.undo[i]
		if _, err := u.ip.run(ctx, args...); err != nil {
			// Deleting a namespace already removed the devices inside it;
			// the later undo steps for those devices then find nothing.
			if !undoTargetGone(err) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// deviceGone reports whether ip failed because the device no longer exists.
func deviceGone(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Cannot find device") || strings.Contains(msg, "No such device")
}

// undoTargetGone reports whether an undo step failed only because what it
// would remove is already gone.
func undoTargetGone(err error) bool {
	msg := err.Error()
	if deviceGone(err) {
		return true
	}
	for _, s := range []string{"No such file or directory", "Cannot open network namespace", "does not exist"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// Down removes the lab described by cfg: both namespaces (the veth pair and
// addresses go with them). It is idempotent: a missing piece is not an error.
func Down(ctx context.Context, cfg Config) error {
	for _, ns := range []string{cfg.ClientNS, cfg.ServerNS} {
		if err := validNamespaceName(ns); err != nil {
			return fmt.Errorf("lab down: namespace: %w", err)
		}
	}
	var present []string
	for _, ns := range []string{cfg.ClientNS, cfg.ServerNS} {
		ok, err := namespaceExists(ns)
		if err != nil {
			return fmt.Errorf("lab down: %w", err)
		}
		if ok {
			present = append(present, ns)
		}
	}
	if len(present) == 0 {
		return nil
	}
	if err := CheckPrivileges(); err != nil {
		return err
	}
	ip, err := newIPTool()
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range present {
		if _, err := ip.run(ctx, "netns", "delete", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("lab down: %w", err)
	}
	return nil
}

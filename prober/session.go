package prober

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/guard"
	"github.com/tcpcraft/tcpcraft/release"
)

// host is one target address and how probes reach it.
type host struct {
	addr    netip.Addr
	src     netip.Addr // our address towards it
	ifindex int
	// hop is its next hop on a device a LinkSender serves; nil: the
	// raw socket, always.
	hop *nexthop
	// The host's targets by port: a table of all ports (index+1, 0:
	// none) for a host with many, else a list sorted by port.
	dense  []int32
	sparse []portEntry
}

type portEntry struct {
	port uint16
	idx  int32
}

// denseFrom is the number of targets from which a host's ports get a
// table of all 65536 (256 KiB) rather than a sorted list.
const denseFrom = 512

// nexthop is a next hop on a LinkSender's device, and what the
// neighbour table knows of it.
type nexthop struct {
	link     *capture.LinkSender
	addr     netip.Addr
	mac      [6]byte
	resolved bool // mac is known (or not needed)
	sentRaw  bool // a probe went the raw way: the kernel resolves it
}

// session is what a run sets up and tears down once.
type session struct {
	cfg     *Config
	targets []Target
	hosts   []host
	tHost   []int32 // target index -> host index
	hostOf  map[netip.Addr]int32

	local     []netip.Addr
	low, high uint16
	listen    bool // answers are expected: guarded and captured
	guard     *guard.Guard
	cap       *capture.Capture
	inj       *capture.Injector
	links     map[int]*capture.LinkSender
	neigh     *capture.Neighbours
	hops      map[hopKey]*nexthop
	pending   []*nexthop // next hops sent to the raw way, not yet resolved
	lastCheck time.Time
	iface     string
	// txStamps: the senders timestamp what they send (TxStamps), so
	// that round trips are timed wire to wire.
	txStamps bool
	// ringless: the capture and the device senders have no rings
	// (Config.ringless).
	ringless bool
}

type hopKey struct {
	ifindex int
	addr    netip.Addr
}

// routeOf is how one address is reached.
type routeOf struct {
	route capture.Route
	src   netip.Addr
}

// openSession validates what needs the system's answers (routes, our
// addresses) and then sets up, in order, the guard, the capture and the
// senders. On an error everything set up is undone.
func openSession(ctx context.Context, cfg *Config, rng *rand.Rand) (_ *session, err error) {
	s := &session{cfg: cfg, links: map[int]*capture.LinkSender{}, hops: map[hopKey]*nexthop{}}
	if s.targets, err = Expand(ctx, cfg.Targets, cfg.Lookup); err != nil {
		return nil, err
	}
	if len(s.targets) == 0 {
		return nil, configErrorf("the targets hold no address that can be probed")
	}
	if err := cfg.checkFamilies(s.targets); err != nil {
		return nil, err
	}
	if err := s.route(); err != nil {
		return nil, err
	}
	// A source address that is not ours: a spoofed probe, whose answers
	// go elsewhere.
	s.listen = true
	if cfg.Src.IsValid() {
		ours, err := capture.HostAddresses()
		if err != nil {
			return nil, err
		}
		if !ours(cfg.Src) {
			if !cfg.Force {
				return nil, configErrorf("%v is not an address of this host: answers to it will not come here (force it to send anyway)", cfg.Src)
			}
			s.listen = false
		}
	}
	if err := s.choosePorts(rng); err != nil {
		return nil, err
	}
	s.ringless = cfg.ringless(len(s.targets))

	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.listen {
		if s.guard, err = guard.InstallScope(ctx, guard.Scope{Addrs: s.local, PortLow: s.low, PortHigh: s.high}); err != nil {
			return nil, err
		}
		ifindex := s.hosts[0].ifindex
		for _, h := range s.hosts {
			if h.ifindex != ifindex {
				ifindex = 0 // several interfaces: capture on all
				break
			}
		}
		scope := capture.Scope{Local: s.local, PortLow: s.low, PortHigh: s.high}
		// Frames up to 1500 bytes: an ICMPv6 error quotes up to 1280
		// (RFC 4443 §2.4(c)) and must arrive whole to be parsed.
		if s.cap, err = capture.OpenScope(ifindex, scope, capture.Config{SnapLen: 1500, Frames: 4096, Queue: s.ringless}); err != nil {
			return nil, err
		}
	}
	if s.inj, err = capture.OpenInjector(); err != nil {
		return nil, err
	}
	if s.neigh, err = capture.OpenNeighbours(); err != nil {
		return nil, err
	}
	s.openLinks()
	if s.listen && !cfg.SendTimes {
		s.enableTxStamps()
	}
	if cfg.IP.BadIPChecksum || (cfg.IP.IDSet && cfg.IP.ID == 0) {
		// The raw socket would fix these fields: resolve every next hop
		// first, so all probes take the link.
		if err := s.resolveAll(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// route finds each target address's route and our source address.
func (s *session) route() error {
	hostIdx := map[netip.Addr]int32{}
	s.hostOf = hostIdx
	s.tHost = make([]int32, len(s.targets))
	var ifRoute *capture.Route
	if s.cfg.Iface != "" {
		r, err := capture.InterfaceRoute(s.cfg.Iface, s.targets[0].Addr)
		if errors.Is(err, capture.ErrNoSuchInterface) {
			return &ConfigError{err}
		}
		if err != nil {
			return err
		}
		ifRoute = &r
	}
	// A prefix is routed as its first address is when its last one is
	// routed the same way (nearly always: one route covers it).
	var last routeOf
	var lastSpec = -1
	specOf := s.specIndex()
	for i, t := range s.targets {
		if h, ok := hostIdx[t.Addr]; ok {
			s.tHost[i] = h
			continue
		}
		var ro routeOf
		spec := specOf(t.Addr)
		if spec >= 0 && spec == lastSpec && last.route.Index != 0 && s.cfg.Targets[spec].Hosts() > 1 {
			ro = last
		} else {
			var err error
			if ro, err = s.lookup(t.Addr, ifRoute); err != nil {
				return err
			}
			if spec >= 0 && s.cfg.Targets[spec].Hosts() > 1 {
				end := lastAddr(s.cfg.Targets[spec].Prefix)
				other, err := s.lookup(end, ifRoute)
				if err == nil && other.route.Index == ro.route.Index && other.route.Gateway == ro.route.Gateway && other.src == ro.src {
					last, lastSpec = ro, spec
				}
			}
		}
		h := host{addr: t.Addr, src: ro.src, ifindex: ro.route.Index}
		// Set up below, once the senders are open.
		h.hop = &nexthop{addr: ro.route.Gateway}
		if !ro.route.Gateway.IsValid() {
			h.hop.addr = t.Addr
		}
		if ro.route.Local {
			h.hop.addr = netip.Addr{} // loopback: no address needed
		}
		hostIdx[t.Addr] = int32(len(s.hosts))
		s.tHost[i] = int32(len(s.hosts))
		s.hosts = append(s.hosts, h)
		if len(s.hosts) == 1 {
			s.iface = ro.route.Interface
		}
		found := false
		for _, a := range s.local {
			found = found || a == ro.src
		}
		if !found {
			s.local = append(s.local, ro.src)
			if len(s.local) > 8 {
				return configErrorf("the targets are reached from more than 8 of this host's addresses; split the run")
			}
		}
	}
	s.indexPorts()
	return nil
}

// indexPorts builds each host's table of its targets by port.
func (s *session) indexPorts() {
	count := make([]int32, len(s.hosts))
	for _, h := range s.tHost {
		count[h]++
	}
	for i, t := range s.targets {
		h := &s.hosts[s.tHost[i]]
		if count[s.tHost[i]] >= denseFrom {
			if h.dense == nil {
				h.dense = make([]int32, 65536)
			}
			h.dense[t.Port] = int32(i) + 1
			continue
		}
		h.sparse = append(h.sparse, portEntry{t.Port, int32(i)})
	}
	for i := range s.hosts {
		if sp := s.hosts[i].sparse; len(sp) > 1 {
			slices.SortFunc(sp, func(a, b portEntry) int { return int(a.port) - int(b.port) })
		}
	}
}

// targetOf returns the index of the target a, if a is one.
func (s *session) targetOf(a netip.AddrPort) (int32, bool) {
	hi, ok := s.hostOf[a.Addr().Unmap()]
	if !ok {
		return 0, false
	}
	h := &s.hosts[hi]
	if h.dense != nil {
		t := h.dense[a.Port()]
		return t - 1, t != 0
	}
	i, ok := slices.BinarySearchFunc(h.sparse, a.Port(), func(e portEntry, p uint16) int { return int(e.port) - int(p) })
	if !ok {
		return 0, false
	}
	return h.sparse[i].idx, true
}

// specIndex returns a function telling which spec's prefix holds an
// address (-1: a name's, or none).
func (s *session) specIndex() func(netip.Addr) int {
	return func(a netip.Addr) int {
		for i, sp := range s.cfg.Targets {
			if sp.Name == "" && sp.Prefix.Contains(a) {
				return i
			}
		}
		return -1
	}
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// lookup routes one address (through iface, when given) and picks our
// source address for it.
func (s *session) lookup(a netip.Addr, iface *capture.Route) (routeOf, error) {
	var ro routeOf
	r, err := capture.LookupRoute(a)
	if iface != nil {
		// Through the interface asked for: its address, and the
		// route's gateway only if the route leaves by it.
		via := capture.Route{Destination: a, Interface: iface.Interface, Index: iface.Index, MTU: iface.MTU, Source: iface.Source, Local: iface.Local}
		if err == nil && r.Index == iface.Index {
			via.Gateway = r.Gateway
		}
		if iface.Source.Is4() != a.Is4() {
			r2, err := capture.InterfaceRoute(iface.Interface, a)
			if err != nil {
				return ro, err
			}
			via.Source = r2.Source
		}
		r, err = via, nil
	}
	if err != nil {
		return ro, fmt.Errorf("no route to %v: %w", a, err)
	}
	ro.route, ro.src = r, r.Source
	if s.cfg.Src.IsValid() && s.cfg.Src.Unmap().Is4() == a.Is4() {
		ro.src = s.cfg.Src.Unmap()
	}
	return ro, nil
}

// portBlockMax is the most source ports a run guards: enough that a
// flood to an open port reuses a 4-tuple only after the peer has had our
// RST for it, few enough to check quickly that no kernel socket holds one
// (a bind each, about 50 µs). A scan, one probe per target, reuses a
// 4-tuple only for a retransmission, a wait later: scanBlock will do.
const (
	portBlockMax = 1024
	scanBlock    = 64
)

// choosePorts picks the run's source ports.
func (s *session) choosePorts(rng *rand.Rand) error {
	if s.cfg.SrcPort != 0 {
		s.low, s.high = s.cfg.SrcPort, s.cfg.SrcPort
		return nil
	}
	n := portBlockMax
	planned := len(s.targets) * s.cfg.Count
	if s.cfg.Traceroute {
		planned = s.cfg.maxTTL() * s.cfg.Count
	}
	if s.cfg.Count == 1 && !s.cfg.Flood {
		n = scanBlock
	}
	if s.cfg.Count > 0 && planned < n && !s.cfg.RandomSrcPort {
		n = max(planned, 1)
	}
	low, err := capture.PortBlock(rng, n)
	if err != nil {
		return err
	}
	s.low, s.high = low, low+uint16(n-1)
	return nil
}

// openLinks opens a LinkSender for each interface the hosts use, and
// looks their next hops up. A device the sender cannot serve keeps the
// raw socket.
func (s *session) openLinks() {
	if s.cfg.RawSocketOnly {
		for i := range s.hosts {
			s.hosts[i].hop = nil
		}
		return
	}
	tables := map[int]map[netip.Addr][6]byte{}
	for i := range s.hosts {
		h := &s.hosts[i]
		if h.addr.Is4() && h.addr.IsLoopback() {
			// A frame handed to lo arrives without the route its
			// output gave it, and IPv4's input routing drops one
			// addressed to 127.0.0.0/8 as a martian (unless
			// route_localnet): the raw socket's packets keep theirs.
			h.hop = nil
			continue
		}
		link, ok := s.links[h.ifindex]
		if !ok {
			link, _ = capture.OpenLinkSender(h.ifindex, capture.LinkConfig{NoRing: s.ringless}) // nil: the raw socket
			s.links[h.ifindex] = link
		}
		if link == nil {
			h.hop = nil
			continue
		}
		key := hopKey{h.ifindex, h.hop.addr}
		if hop, ok := s.hops[key]; ok {
			h.hop = hop
			continue
		}
		h.hop.link = link
		h.hop.resolved = !link.NeedsAddress()
		if !h.hop.resolved {
			table, ok := tables[h.ifindex]
			if !ok {
				table, _ = s.neigh.Table(h.ifindex)
				tables[h.ifindex] = table
			}
			h.hop.mac, h.hop.resolved = table[h.hop.addr]
		}
		s.hops[key] = h.hop
	}
}

// enableTxStamps asks every sender for transmit timestamps (round trips
// wire to wire, Config.SendTimes). A socket that refuses leaves the
// probes it sends timed from before their send (Stats.WireTimed counts
// the others).
func (s *session) enableTxStamps() {
	if s.inj.EnableTxStamps() == nil {
		s.txStamps = true
	}
	for _, link := range s.links {
		if link != nil && link.EnableTxStamps() == nil {
			s.txStamps = true
		}
	}
}

// resolveAll asks the kernel to resolve every unresolved next hop and
// waits up to a second for them.
func (s *session) resolveAll(ctx context.Context) error {
	var want []*nexthop
	for _, h := range s.hosts {
		if h.hop == nil {
			return configErrorf("a bad IP checksum or an IP ID of 0 needs a link the AF_PACKET sender serves; %v is not reached through one", h.addr)
		}
		if !h.hop.resolved {
			if err := s.neigh.Resolve(h.hop.link.Interface(), h.hop.addr); err != nil {
				return err
			}
			want = append(want, h.hop)
		}
	}
	deadline := time.Now().Add(time.Second)
	for len(want) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
		s.pending = want
		s.checkPending(time.Now().Add(time.Hour))
		want = s.pending
	}
	if len(want) > 0 {
		return fmt.Errorf("the link-layer address of %v is unknown (no ARP or neighbour discovery answer within 1 s)", want[0].addr)
	}
	return nil
}

// checkPending looks the next hops sent to the raw way up again (at most
// every 10 ms), so that later probes take the link.
func (s *session) checkPending(now time.Time) {
	if len(s.pending) == 0 || now.Sub(s.lastCheck) < 10*time.Millisecond {
		return
	}
	s.lastCheck = now
	tables := map[int]map[netip.Addr][6]byte{}
	left := s.pending[:0]
	for _, hop := range s.pending {
		ifindex := hop.link.Interface()
		table, ok := tables[ifindex]
		if !ok {
			table, _ = s.neigh.Table(ifindex)
			tables[ifindex] = table
		}
		if mac, ok := table[hop.addr]; ok {
			hop.mac, hop.resolved = mac, true
			continue
		}
		left = append(left, hop)
	}
	s.pending = left
}

// close undoes the set-up, the guard last, and returns the guard's
// removal error (a leftover rule matters; the rest cannot fail in a way
// that leaves anything behind).
func (s *session) close() error {
	if s.cfg.ReleaseLater {
		s.releaseLater()
	}
	if s.cap != nil {
		s.cap.Close()
	}
	for _, l := range s.links {
		if l != nil {
			l.Close()
		}
	}
	if s.inj != nil {
		s.inj.Close()
	}
	s.neigh.Close()
	if s.guard != nil {
		if err := s.guard.Remove(context.Background()); err != nil {
			return fmt.Errorf("removing the firewall rule: %w", err)
		}
	}
	return nil
}

// releaseLater deletes the guard's table now and hands the sockets whose
// release waits for a grace period (the capture, the device senders, the
// guard's) to a helper (Config.ReleaseLater). A helper that cannot be made
// changes nothing: close then pays the waits.
func (s *session) releaseLater() {
	s.guard.Delete()
	var conns []release.Conn
	if s.cap != nil {
		conns = append(conns, s.cap.SyscallConn())
	}
	for _, l := range s.links {
		if l != nil {
			conns = append(conns, l)
		}
	}
	if rc := s.guard.SyscallConn(); rc != nil {
		conns = append(conns, rc)
	}
	if len(conns) > 0 {
		_, _ = release.Later(conns...)
	}
}

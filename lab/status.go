package lab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// netnsDir is where `ip netns` keeps the bind mounts that name namespaces
// (NETNS_RUN_DIR in iproute2).
const netnsDir = "/var/run/netns"

// State summarises a Snapshot.
type State string

const (
	StateDown    State = "down"    // neither namespace exists
	StateUp      State = "up"      // everything is as Up makes it
	StatePartial State = "partial" // something exists, but not all of it or not right
)

// Snapshot is what exists of one lab at the moment Status looked.
type Snapshot struct {
	Client, Server Side
}

// Side is one namespace of the lab and the devices in it.
type Side struct {
	Namespace       string
	NamespaceExists bool
	Loopback        Link         // "lo"
	Interface       Link         // this side's veth end
	Want            netip.Prefix // the address Up gives Interface
	Want6           netip.Prefix // its IPv6 address (invalid: none)
}

// Link is one network device as `ip` reports it. Name is always set;
// the other fields only when Exists.
type Link struct {
	Name      string
	Exists    bool
	Kind      string // "veth", or "" for devices without link info such as lo
	Up        bool   // administratively up (IFF_UP)
	Carrier   bool   // lower layer up (IFF_LOWER_UP): for veth, the peer is up too
	Index     int
	PeerIndex int // ifindex of the peer of a veth end (in the peer's namespace)
	Addrs     []netip.Prefix
}

// HasAddr reports whether p is assigned to the link.
func (l Link) HasAddr(p netip.Prefix) bool { return slices.Contains(l.Addrs, p) }

// Peered reports whether the two veth ends exist and are each other's peer.
func (s Snapshot) Peered() bool {
	c, v := s.Client.Interface, s.Server.Interface
	return c.Exists && v.Exists && c.PeerIndex == v.Index && v.PeerIndex == c.Index
}

// Problems lists, in words, each way the lab differs from what Up builds.
// It is empty exactly when State is StateUp.
func (s Snapshot) Problems() []string {
	var out []string
	for _, side := range []Side{s.Client, s.Server} {
		if !side.NamespaceExists {
			out = append(out, "namespace "+side.Namespace+" does not exist")
			continue
		}
		if !side.Loopback.Up {
			out = append(out, fmt.Sprintf("lo in %s is down", side.Namespace))
		}
		switch l := side.Interface; {
		case !l.Exists:
			out = append(out, fmt.Sprintf("%s does not exist in %s", l.Name, side.Namespace))
		case l.Kind != "veth":
			out = append(out, fmt.Sprintf("%s in %s is a %q device, not veth", l.Name, side.Namespace, l.Kind))
		default:
			if !l.Up {
				out = append(out, fmt.Sprintf("%s in %s is down", l.Name, side.Namespace))
			}
			for _, want := range []netip.Prefix{side.Want, side.Want6} {
				if want.IsValid() && !l.HasAddr(want) {
					out = append(out, fmt.Sprintf("%s in %s lacks address %s", l.Name, side.Namespace, want))
				}
			}
		}
	}
	if s.Client.Interface.Exists && s.Server.Interface.Exists && !s.Peered() {
		out = append(out, fmt.Sprintf("%s and %s are not the two ends of one veth pair", s.Client.Interface.Name, s.Server.Interface.Name))
	}
	return out
}

// State is StateDown when neither namespace exists, StateUp when the lab is
// complete, and StatePartial otherwise.
func (s Snapshot) State() State {
	switch {
	case !s.Client.NamespaceExists && !s.Server.NamespaceExists:
		return StateDown
	case len(s.Problems()) == 0:
		return StateUp
	default:
		return StatePartial
	}
}

// String renders the status for people, one line per namespace and device,
// ending with the overall state and any problems.
func (s Snapshot) String() string {
	var b strings.Builder
	for _, side := range []struct {
		role string
		Side
	}{{"client", s.Client}, {"server", s.Server}} {
		if !side.NamespaceExists {
			fmt.Fprintf(&b, "%s namespace %s: absent\n", side.role, side.Namespace)
			continue
		}
		fmt.Fprintf(&b, "%s namespace %s: present\n", side.role, side.Namespace)
		for _, l := range []Link{side.Loopback, side.Interface} {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	fmt.Fprintf(&b, "lab: %s\n", s.State())
	if s.State() == StatePartial {
		for _, p := range s.Problems() {
			fmt.Fprintf(&b, "  problem: %s\n", p)
		}
	}
	return b.String()
}

// String renders one device: name, kind, state and addresses.
func (l Link) String() string {
	if !l.Exists {
		return l.Name + ": absent"
	}
	var parts []string
	if l.Kind != "" {
		parts = append(parts, l.Kind)
	}
	switch {
	case !l.Up:
		parts = append(parts, "down")
	case l.Carrier:
		parts = append(parts, "up")
	default:
		parts = append(parts, "up (no carrier)")
	}
	for _, a := range l.Addrs {
		parts = append(parts, a.String())
	}
	return l.Name + ": " + strings.Join(parts, ", ")
}

// Status reports what exists of the lab described by cfg. It changes
// nothing. When neither namespace exists it needs no privileges; looking
// inside an existing namespace needs root or CAP_SYS_ADMIN.
func Status(ctx context.Context, cfg Config) (Snapshot, error) {
	if err := cfg.Validate(); err != nil {
		return Snapshot{}, err
	}
	ip, err := newIPTool()
	if err != nil {
		return Snapshot{}, err
	}
	st, err := status(ctx, ip, cfg)
	if err != nil {
		return Snapshot{}, fmt.Errorf("lab status: %w", err)
	}
	return st, nil
}

func status(ctx context.Context, ip ipTool, cfg Config) (Snapshot, error) {
	client, err := sideStatus(ctx, ip, cfg.ClientNS, cfg.ClientIf, cfg.ClientAddr)
	if err != nil {
		return Snapshot{}, err
	}
	client.Want6 = cfg.ClientAddr6
	server, err := sideStatus(ctx, ip, cfg.ServerNS, cfg.ServerIf, cfg.ServerAddr)
	if err != nil {
		return Snapshot{}, err
	}
	server.Want6 = cfg.ServerAddr6
	return Snapshot{Client: client, Server: server}, nil
}

func sideStatus(ctx context.Context, ip ipTool, ns, dev string, want netip.Prefix) (Side, error) {
	side := Side{
		Namespace: ns,
		Loopback:  Link{Name: "lo"},
		Interface: Link{Name: dev},
		Want:      want,
	}
	exists, err := namespaceExists(ns)
	if err != nil || !exists {
		return side, err
	}
	side.NamespaceExists = true
	if err := CheckPrivileges(); err != nil {
		return side, fmt.Errorf("namespace %s exists, but looking inside it: %w", ns, err)
	}
	links, err := ip.links(ctx, ns)
	if err != nil {
		return side, err
	}
	for _, l := range links {
		switch l.Name {
		case "lo":
			side.Loopback = l
		case dev:
			side.Interface = l
		}
	}
	return side, nil
}

// namespaceExists reports whether `ip netns` knows a namespace by that name.
func namespaceExists(ns string) (bool, error) {
	_, err := os.Stat(filepath.Join(netnsDir, ns))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("looking for namespace %s: %w", ns, err)
	}
}

// ipLinkJSON is the part of `ip -d -j addr show` output the lab reads.
type ipLinkJSON struct {
	Index     int      `json:"ifindex"`
	LinkIndex int      `json:"link_index"`
	Name      string   `json:"ifname"`
	Flags     []string `json:"flags"`
	LinkInfo  struct {
		Kind string `json:"info_kind"`
	} `json:"linkinfo"`
	AddrInfo []struct {
		Family    string `json:"family"`
		Local     string `json:"local"`
		PrefixLen int    `json:"prefixlen"`
	} `json:"addr_info"`
}

// parseLinks turns `ip -d -j addr show` output into Links.
func parseLinks(out []byte) ([]Link, error) {
	var raw []ipLinkJSON
	if err := json.Unmarshal(out, &raw); err != nil {
		return nil, fmt.Errorf("reading `ip -j addr show` output: %w", err)
	}
	links := make([]Link, 0, len(raw))
	for _, r := range raw {
		l := Link{
			Name:      r.Name,
			Exists:    true,
			Kind:      r.LinkInfo.Kind,
			Up:        slices.Contains(r.Flags, "UP"),
			Carrier:   slices.Contains(r.Flags, "LOWER_UP"),
			Index:     r.Index,
			PeerIndex: r.LinkIndex,
		}
		for _, a := range r.AddrInfo {
			addr, err := netip.ParseAddr(a.Local)
			if err != nil {
				return nil, fmt.Errorf("device %s: address %q: %w", r.Name, a.Local, err)
			}
			p, err := addr.Prefix(a.PrefixLen)
			if err != nil {
				return nil, fmt.Errorf("device %s: prefix length %d: %w", r.Name, a.PrefixLen, err)
			}
			// Keep the host part: 10.0.2.21/24, not 10.0.2.0/24.
			l.Addrs = append(l.Addrs, netip.PrefixFrom(addr, p.Bits()))
		}
		links = append(links, l)
	}
	return links, nil
}

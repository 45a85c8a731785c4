package capture

import (
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Neighbours reads next hops' link-layer addresses from the kernel's
// neighbour table (ARP for IPv4, neighbour discovery for IPv6), and asks
// the kernel to resolve the ones it lacks, over a route netlink socket
// opened in the network namespace of the thread that called
// OpenNeighbours. A LinkSender needs these addresses; the raw socket does
// not (the kernel resolves them itself).
//
// Its methods may be called from one goroutine at a time.
type Neighbours struct {
	h *netlink.Handle
}

// OpenNeighbours opens the route netlink socket.
func OpenNeighbours() (*Neighbours, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("opening a route netlink socket: %w", err)
	}
	return &Neighbours{h: h}, nil
}

// Table returns the usable 6-byte entries of interface ifindex, of both
// families, from one dump of the table.
func (n *Neighbours) Table(ifindex int) (map[netip.Addr][6]byte, error) {
	entries, err := n.h.NeighList(ifindex, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("reading the neighbour table: %w", err)
	}
	out := make(map[netip.Addr][6]byte, len(entries))
	for _, e := range entries {
		ip, ok := netip.AddrFromSlice(e.IP)
		if !ok || e.State&usableNUD == 0 || len(e.HardwareAddr) != 6 {
			continue
		}
		out[ip.Unmap()] = [6]byte(e.HardwareAddr)
	}
	return out, nil
}

// Resolve asks the kernel to resolve addr on interface ifindex, as `ip
// neigh replace ADDR dev DEV use` does (NTF_USE: the entry is marked in
// use, created and resolved if missing; its state is not set by us). The
// answer lands in the table later; Lookup sees it then. It sends an ARP
// request or a neighbour solicitation, the same as the first packet to
// addr would make the kernel send.
func (n *Neighbours) Resolve(ifindex int, addr netip.Addr) error {
	addr = addr.Unmap()
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	err := n.h.NeighSet(&netlink.Neigh{LinkIndex: ifindex, Family: fam, IP: addr.AsSlice(), Flags: netlink.NTF_USE, State: netlink.NUD_NONE})
	if err != nil {
		return fmt.Errorf("resolving %s on interface %d: %w", addr, ifindex, err)
	}
	return nil
}

// Close closes the netlink socket.
func (n *Neighbours) Close() {
	if n != nil && n.h != nil {
		n.h.Close()
		n.h = nil
	}
}

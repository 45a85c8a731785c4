package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// GSOSender hands the kernel large TCP segments ("super-segments", up to
// 64 KB) with virtio_net_hdr segmentation metadata through an AF_PACKET
// socket with PACKET_VNET_HDR, so that the kernel cuts them into MSS-sized
// segments (software GSO, or the device's TSO) the way it does for its own
// TCP, over IPv4 (VIRTIO_NET_HDR_GSO_TCPV4) and IPv6
// (VIRTIO_NET_HDR_GSO_TCPV6) alike. On a veth pair the super-segment even
// crosses to the peer whole and the peer's TCP takes it in one piece, as it
// does with the kernel's own traffic. Sending one packet per MSS through a
// raw socket costs a system call and a full trip through the peer's
// receive path per 1448 bytes; that per-packet cost, not tcpcraft's own
// code, was what bounded bulk sends (measured: about 70% of a
// bulk sender's CPU was in sendto).
//
// What it does not do: route or resolve addresses on its own. It sends on
// one interface to one link-layer address, the next hop's, read from the
// kernel's neighbour table (ARP for IPv4, neighbour discovery for IPv6) —
// so after the handshake, which went through the raw socket and thus made
// the kernel resolve it. The packet skips the IP layer of this host: no
// netfilter OUTPUT rule sees it, which is fine for tcpcraft (the RST guard
// is on INPUT).
//
// Send may be called from several goroutines; Close more than once.
type GSOSender struct {
	file *os.File
	conn syscall.RawConn
	to   unix.RawSockaddrLinklayer
	// mu guards the send scratch: the virtio_net_hdr and Ethernet header
	// in front of every packet, and the sendmsg(2) arguments (kept here so
	// that a send allocates nothing).
	mu       sync.Mutex
	prefix   [virtioNetHdrLen + ethHdrLen]byte
	iov      []unix.Iovec
	msg      unix.Msghdr
	ifindex  int
	dev      string
	nextHop  netip.Addr
	ipv6     bool
	resolved bool // the next hop's address is in to and prefix
	closed   atomic.Bool
	nl       *rtnl // a route netlink socket of the sender's namespace, until the next hop is resolved
}

const (
	virtioNetHdrLen      = 10 // struct virtio_net_hdr (no num_buffers)
	ethHdrLen            = 14
	virtioNetHdrGSOTCPv4 = 1 // VIRTIO_NET_HDR_GSO_TCPV4
	virtioNetHdrGSOTCPv6 = 4 // VIRTIO_NET_HDR_GSO_TCPV6
)

// OpenGSOSender opens an AF_PACKET socket on interface ifindex that sends
// to the link-layer address of nextHop, an IPv4 or IPv6 address (packets
// of that family only). Everything is bound to the network namespace of
// the calling thread (not the process's: a test drives tcpcraft from a
// thread that entered a lab namespace): the socket, the interface, and a
// route netlink socket for the neighbour table, which is read at the first
// Send, when the address is known (the handshake, which goes through the
// kernel's IP layer, makes the kernel resolve it): one RTM_GETNEIGH for
// the next hop, answered while it is sent (a dump of the table through
// github.com/vishvananda/netlink, with its 64 KiB receive buffer, took
// 0.1-0.25 ms between the SYN-ACK and our ACK). It fails cleanly where GSO
// cannot work (a device without a link-layer address such as loopback,
// or a kernel without PACKET_VNET_HDR), and Send fails while there is no
// neighbour entry: callers then send per segment.
func OpenGSOSender(ifindex int, nextHop netip.Addr) (*GSOSender, error) {
	nextHop = nextHop.Unmap()
	if !nextHop.IsValid() || nextHop.IsUnspecified() || nextHop.Zone() != "" {
		return nil, fmt.Errorf("GSO sender: next hop %v is not a unicast address", nextHop)
	}
	ifi, err := linkByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("GSO sender: interface %d: %w", ifindex, err)
	}
	if len(ifi.hwaddr) != 6 || ifi.flags&unix.IFF_LOOPBACK != 0 {
		return nil, fmt.Errorf("GSO sender: %s has no Ethernet address", ifi.name)
	}
	// Opened now, in this thread's namespace; the socket stays bound to
	// it wherever it is used later.
	nl, err := openRtnl()
	if err != nil {
		return nil, fmt.Errorf("GSO sender: %w", err)
	}
	// Protocol 0: this socket only sends, it never receives a frame.
	// SOCK_RAW (we write the Ethernet header) because the kernel accepts
	// PACKET_VNET_HDR only on raw packet sockets.
	//
	// Blocking, so that Go's poller does not watch it: a watched socket
	// is woken (sock_def_write_space, an epoll callback) every time the
	// peer's receive path frees one of our packets, which on a veth is
	// once per packet, and cost a bulk upload 2% of its CPU. A send that
	// finds the socket's buffer full then waits in the kernel rather than
	// in the poller; the packets leave at once on the devices tcpcraft
	// uses, so that wait is short.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		nl.close()
		return nil, fmt.Errorf("GSO sender: AF_PACKET socket: %w", permissionError(err))
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		unix.Close(fd)
		nl.close()
		return nil, fmt.Errorf("GSO sender: PACKET_VNET_HDR: %w", err)
	}
	file := os.NewFile(uintptr(fd), "af_packet-gso")
	conn, err := file.SyscallConn()
	if err != nil {
		file.Close()
		nl.close()
		return nil, fmt.Errorf("GSO sender: %w", err)
	}
	g := &GSOSender{file: file, conn: conn, iov: make([]unix.Iovec, 0, 64),
		ifindex: ifindex, dev: ifi.name, nextHop: nextHop, ipv6: nextHop.Is6(),
		nl: nl}
	// Protocol 0 in the address: the kernel takes it from the Ethernet
	// header (packet_parse_headers).
	g.to = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Ifindex: int32(ifindex), Halen: 6}
	eth := g.prefix[virtioNetHdrLen:]
	copy(eth[6:12], ifi.hwaddr)
	etherType := uint16(ethPIP)
	if g.ipv6 {
		etherType = ethPIPv6
	}
	binary.BigEndian.PutUint16(eth[12:], etherType)
	return g, nil
}

// resolve looks the next hop's link-layer address up, once. Called with
// g.mu held.
func (g *GSOSender) resolve() error {
	if g.resolved {
		return nil
	}
	mac, err := g.neighbour()
	if err != nil {
		return fmt.Errorf("GSO sender: %w", err)
	}
	copy(g.to.Addr[:], mac)
	copy(g.prefix[virtioNetHdrLen:virtioNetHdrLen+6], mac)
	g.resolved = true
	g.nl.close() // needed no more
	g.nl = nil
	return nil
}

// neighbour reads the link-layer address of the next hop on the sender's
// interface from the kernel's neighbour table (`ip neigh get ADDR dev
// DEV`); only a usable entry will do (usableNUD).
func (g *GSOSender) neighbour() (net.HardwareAddr, error) {
	hw, err := g.nl.getNeighbour(g.ifindex, g.nextHop)
	if err != nil {
		return nil, fmt.Errorf("reading the neighbour table: %w", err)
	}
	if hw == nil {
		return nil, fmt.Errorf("no neighbour entry for %v on %s", g.nextHop, g.dev)
	}
	return hw, nil
}

// Send sends one IPv4/TCP or IPv6/TCP packet (of the next hop's family)
// made of hdr followed by the payload pieces (a scatter-gather send: the
// pieces go to the kernel from where they lie, with no copy in between).
// hdr holds at least the IP and TCP headers (for IPv6, TCP right after the
// fixed header); a whole packet in hdr and no pieces is fine too. When
// mss > 0 and the TCP payload is longer than mss, the packet is a
// super-segment the kernel cuts into mss-byte segments: each gets the IP
// and TCP headers of the original (options included) with the IPv4 ID,
// the lengths, the sequence number and the checksums fixed up (the kernel
// computes the TCP checksums itself, so the checksum field of hdr does not
// matter), and FIN/PSH only on the last (tcp_gso_segment). Otherwise the
// packet is sent as it is, and its checksums must be right.
func (g *GSOSender) Send(hdr []byte, payload [][]byte, mss int) error {
	total := len(hdr)
	for _, p := range payload {
		total += len(p)
	}
	ipLen, err := g.checkHeaders(hdr, total)
	if err != nil {
		return err
	}
	thl := int(hdr[ipLen+12]>>4) * 4
	if len(payload)+2 > maxIovecs {
		return fmt.Errorf("GSO send: %d payload pieces, at most %d", len(payload), maxIovecs-2)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed.Load() {
		return net.ErrClosed
	}
	if err := g.resolve(); err != nil {
		return err
	}
	clear(g.prefix[:virtioNetHdrLen])
	if mss > 0 && total-ipLen-thl > mss {
		// No VIRTIO_NET_HDR_F_NEEDS_CSUM: with it the kernel (6.18,
		// veth) drops the packet in validate_xmit_skb (sendto says
		// ENOMEM; ENOBUFS with PACKET_QDISC_BYPASS). Without it
		// tcp4_gso_segment and tcp6_gso_segment set the checksum up
		// themselves (CHECKSUM_PARTIAL from the pseudo-header), and each
		// segment is checksummed by the device or in software. Measured,
		// not guessed.
		h := g.prefix[:virtioNetHdrLen]
		h[1] = virtioNetHdrGSOTCPv4
		if g.ipv6 {
			h[1] = virtioNetHdrGSOTCPv6
		}
		binary.LittleEndian.PutUint16(h[2:], uint16(ipLen+thl)) // hdr_len
		binary.LittleEndian.PutUint16(h[4:], uint16(mss))       // gso_size
		binary.LittleEndian.PutUint16(h[6:], uint16(ipLen))     // csum_start
		binary.LittleEndian.PutUint16(h[8:], uint16(16))        // csum_offset: TCP checksum
	}
	g.iov = g.iov[:0]
	g.iov = appendIovec(g.iov, g.prefix[:])
	g.iov = appendIovec(g.iov, hdr)
	for _, p := range payload {
		g.iov = appendIovec(g.iov, p)
	}
	g.msg.Name = (*byte)(unsafe.Pointer(&g.to))
	g.msg.Namelen = uint32(unsafe.Sizeof(g.to))
	g.msg.Iov = &g.iov[0]
	g.msg.SetIovlen(len(g.iov))
	var sendErr error
	err = g.conn.Write(func(fd uintptr) bool {
		_, _, errno := unix.Syscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&g.msg)), 0)
		sendErr = nil
		if errno != 0 {
			sendErr = errno
		}
		return !errors.Is(sendErr, unix.EAGAIN)
	})
	clear(g.iov) // keep no pointers to the caller's memory
	if err != nil && g.closed.Load() {
		return net.ErrClosed
	}
	if err == nil {
		err = sendErr
	}
	if err != nil {
		return fmt.Errorf("GSO send of %d bytes: %w", total, err)
	}
	return nil
}

// checkHeaders checks that hdr starts with an IP header of the sender's
// family carrying TCP, with a whole TCP header, and a length field that
// agrees with the total bytes given; it returns the IP header's length.
func (g *GSOSender) checkHeaders(hdr []byte, total int) (int, error) {
	if g.ipv6 {
		if len(hdr) < ip6HeaderLen || hdr[0]>>4 != 6 {
			return 0, errors.New("GSO send: not an IPv6 packet (the next hop is IPv6)")
		}
		if hdr[ip6OffNext] != unix.IPPROTO_TCP || len(hdr) < ip6HeaderLen+20 {
			return 0, errors.New("GSO send: not a TCP packet (TCP must follow the IPv6 header)")
		}
		if plen := int(binary.BigEndian.Uint16(hdr[4:])); plen != total-ip6HeaderLen {
			return 0, fmt.Errorf("GSO send: IPv6 payload length %d, but %d bytes follow the header", plen, total-ip6HeaderLen)
		}
		if thl := int(hdr[ip6HeaderLen+12]>>4) * 4; thl < 20 || len(hdr) < ip6HeaderLen+thl {
			return 0, errors.New("GSO send: bad TCP header length")
		}
		return ip6HeaderLen, nil
	}
	if len(hdr) < 20 || hdr[0]>>4 != 4 {
		return 0, errors.New("GSO send: not an IPv4 packet (the next hop is IPv4)")
	}
	ihl := int(hdr[0]&0x0f) * 4
	if ihl < 20 || len(hdr) < ihl+20 || hdr[ipOffProtocol] != unix.IPPROTO_TCP {
		return 0, errors.New("GSO send: not a TCP packet")
	}
	if thl := int(hdr[ihl+12]>>4) * 4; thl < 20 || len(hdr) < ihl+thl {
		return 0, errors.New("GSO send: bad TCP header length")
	}
	if tl := int(binary.BigEndian.Uint16(hdr[2:])); tl != total {
		return 0, fmt.Errorf("GSO send: IPv4 total length %d, but %d bytes given", tl, total)
	}
	return ihl, nil
}

// maxIovecs bounds the pieces of one send (Linux's UIO_MAXIOV is 1024).
const maxIovecs = 1024

func appendIovec(iov []unix.Iovec, b []byte) []unix.Iovec {
	if len(b) == 0 {
		return iov
	}
	v := unix.Iovec{Base: &b[0]}
	v.SetLen(len(b))
	return append(iov, v)
}

// SyscallConn gives access to the sender's packet socket (see
// Capture.SyscallConn).
func (g *GSOSender) SyscallConn() syscall.RawConn { return g.conn }

// Close closes the socket; safe more than once.
func (g *GSOSender) Close() error {
	if g == nil || g.closed.Swap(true) {
		return nil
	}
	err := g.file.Close()
	g.mu.Lock() // a Send may be resolving
	defer g.mu.Unlock()
	if g.nl != nil {
		g.nl.close()
		g.nl = nil
	}
	return err
}

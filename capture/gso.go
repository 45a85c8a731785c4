package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
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
// TCP. On a veth pair the super-segment even crosses to the peer whole and
// the peer's TCP takes it in one piece, as it does with the kernel's own
// traffic. Sending one packet per MSS through a raw socket costs a system
// call and a full trip through the peer's receive path per 1448 bytes;
// that per-packet cost, not tcpcraft's own code, was what bounded bulk
// sends (issue 8: about 70% of a bulk sender's CPU was in sendto).
//
// What it does not do: route or resolve addresses on its own. It sends on
// one interface to one link-layer address, the next hop's, read from the
// kernel's neighbour table (so after the handshake, which went through the
// raw socket and thus through ARP). The packet skips the IP layer of this
// host: no netfilter OUTPUT rule sees it, which is fine for tcpcraft
// (the RST guard is on INPUT).
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
	arp      *os.File // the neighbour table of the sender's namespace
	dev      string
	nextHop  netip.Addr
	resolved bool // the next hop's address is in to and prefix
	closed   atomic.Bool
}

const (
	virtioNetHdrLen       = 10 // struct virtio_net_hdr (no num_buffers)
	ethHdrLen             = 14
	virtioNetHdrFNeedCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	virtioNetHdrGSOTCPv4  = 1 // VIRTIO_NET_HDR_GSO_TCPV4
)

// OpenGSOSender opens an AF_PACKET socket on interface ifindex that sends
// to the link-layer address of nextHop. Everything is bound to the network
// namespace of the calling thread (not the process's: a test drives
// tcpcraft from a thread that entered a lab namespace): the socket, the
// interface, and the neighbour table, which is opened now and read at the
// first Send, when the address is known (the handshake, which goes through
// the kernel's IP layer, makes the kernel resolve it). It fails cleanly
// where GSO cannot work (a device without a link-layer address such as
// loopback, or a kernel without PACKET_VNET_HDR), and Send fails while
// there is no neighbour entry: callers then send per segment.
func OpenGSOSender(ifindex int, nextHop netip.Addr) (*GSOSender, error) {
	if !nextHop.Is4() {
		return nil, fmt.Errorf("GSO sender: next hop %v is not IPv4", nextHop)
	}
	ifi, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("GSO sender: interface %d: %w", ifindex, err)
	}
	if len(ifi.HardwareAddr) != 6 || ifi.Flags&net.FlagLoopback != 0 {
		return nil, fmt.Errorf("GSO sender: %s has no Ethernet address", ifi.Name)
	}
	// /proc/thread-self, not /proc/net (= /proc/self/net, the main
	// thread's namespace); an open file stays bound to its namespace.
	arp, err := os.Open("/proc/thread-self/net/arp")
	if err != nil {
		return nil, fmt.Errorf("GSO sender: opening the neighbour table: %w", err)
	}
	// Protocol 0: this socket only sends, it never receives a frame.
	// SOCK_RAW (we write the Ethernet header) because the kernel accepts
	// PACKET_VNET_HDR only on raw packet sockets.
	//
	// Blocking, so that Go's poller does not watch it: a watched socket
	// is woken (sock_def_write_space, an epoll callback) every time the
	// peer's receive path frees one of our packets, which on a veth is
	// once per packet, and cost a bulk upload 2% of its CPU (issue 8).
	// A send that finds the socket's buffer full then waits in the
	// kernel rather than in the poller; the packets leave at once on
	// the devices tcpcraft uses, so that wait is short.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		arp.Close()
		return nil, fmt.Errorf("GSO sender: AF_PACKET socket: %w", permissionError(err))
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		unix.Close(fd)
		arp.Close()
		return nil, fmt.Errorf("GSO sender: PACKET_VNET_HDR: %w", err)
	}
	file := os.NewFile(uintptr(fd), "af_packet-gso")
	conn, err := file.SyscallConn()
	if err != nil {
		file.Close()
		arp.Close()
		return nil, fmt.Errorf("GSO sender: %w", err)
	}
	g := &GSOSender{file: file, conn: conn, iov: make([]unix.Iovec, 0, 64),
		arp: arp, dev: ifi.Name, nextHop: nextHop}
	// Protocol 0 in the address: the kernel takes it from the Ethernet
	// header (packet_parse_headers).
	g.to = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Ifindex: int32(ifindex), Halen: 6}
	eth := g.prefix[virtioNetHdrLen:]
	copy(eth[6:12], ifi.HardwareAddr)
	binary.BigEndian.PutUint16(eth[12:], ethPIP)
	return g, nil
}

// resolve looks the next hop's link-layer address up, once. Called with
// g.mu held.
func (g *GSOSender) resolve() error {
	if g.resolved {
		return nil
	}
	mac, err := neighbour(g.arp, g.dev, g.nextHop)
	if err != nil {
		return fmt.Errorf("GSO sender: %w", err)
	}
	copy(g.to.Addr[:], mac)
	copy(g.prefix[virtioNetHdrLen:virtioNetHdrLen+6], mac)
	g.resolved = true
	return nil
}

// neighbour reads the link-layer address of addr on interface dev from the
// neighbour table arp (/proc/<tid>/net/arp), from its start.
func neighbour(arp *os.File, dev string, addr netip.Addr) (net.HardwareAddr, error) {
	if _, err := arp.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("reading the neighbour table: %w", err)
	}
	sc := bufio.NewScanner(arp)
	for sc.Scan() {
		// IP address, HW type, Flags, HW address, Mask, Device
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 || fs[0] != addr.String() || fs[5] != dev {
			continue
		}
		if fs[2] == "0x0" { // incomplete
			break
		}
		mac, err := net.ParseMAC(fs[3])
		if err != nil || len(mac) != 6 {
			return nil, fmt.Errorf("neighbour %v on %s: bad address %q", addr, dev, fs[3])
		}
		return mac, nil
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the neighbour table: %w", err)
	}
	return nil, fmt.Errorf("no neighbour entry for %v on %s", addr, dev)
}

// Send sends one IPv4/TCP packet made of hdr followed by the payload
// pieces (a scatter-gather send: the pieces go to the kernel from where
// they lie, with no copy in between). hdr holds at least the IPv4 and TCP
// headers; a whole packet in hdr and no pieces is fine too. When mss > 0
// and the TCP payload is longer than mss, the packet is a super-segment the
// kernel cuts into mss-byte segments: each gets the IP and TCP headers of
// the original (options included) with the IP ID, length, sequence number
// and checksums fixed up (the kernel computes the TCP checksums itself, so
// the checksum field of hdr does not matter), and FIN/PSH only on the last
// (tcp_gso_segment). Otherwise the packet is sent as it is, and its
// checksums must be right.
func (g *GSOSender) Send(hdr []byte, payload [][]byte, mss int) error {
	if len(hdr) < 20 || hdr[0]>>4 != 4 {
		return errors.New("GSO send: not an IPv4 packet")
	}
	ihl := int(hdr[0]&0x0f) * 4
	if ihl < 20 || len(hdr) < ihl+20 || hdr[9] != unix.IPPROTO_TCP {
		return errors.New("GSO send: not a TCP packet")
	}
	thl := int(hdr[ihl+12]>>4) * 4
	if thl < 20 || len(hdr) < ihl+thl {
		return errors.New("GSO send: bad TCP header length")
	}
	total := len(hdr)
	for _, p := range payload {
		total += len(p)
	}
	if int(binary.BigEndian.Uint16(hdr[2:])) != total {
		return fmt.Errorf("GSO send: IPv4 total length %d, but %d bytes given", binary.BigEndian.Uint16(hdr[2:]), total)
	}
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
	if mss > 0 && total-ihl-thl > mss {
		// No VIRTIO_NET_HDR_F_NEEDS_CSUM: with it the kernel (6.18,
		// veth) drops the packet in validate_xmit_skb (sendto says
		// ENOMEM; ENOBUFS with PACKET_QDISC_BYPASS). Without it
		// tcp4_gso_segment sets the checksum up itself (CHECKSUM_PARTIAL
		// from the pseudo-header), and each segment is checksummed by
		// the device or in software. Measured, not guessed.
		h := g.prefix[:virtioNetHdrLen]
		h[1] = virtioNetHdrGSOTCPv4
		binary.LittleEndian.PutUint16(h[2:], uint16(ihl+thl)) // hdr_len
		binary.LittleEndian.PutUint16(h[4:], uint16(mss))     // gso_size
		binary.LittleEndian.PutUint16(h[6:], uint16(ihl))     // csum_start
		binary.LittleEndian.PutUint16(h[8:], uint16(16))      // csum_offset: TCP checksum
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
	err := g.conn.Write(func(fd uintptr) bool {
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

// Close closes the socket; safe more than once.
func (g *GSOSender) Close() error {
	if g == nil || g.closed.Swap(true) {
		return nil
	}
	g.arp.Close()
	return g.file.Close()
}

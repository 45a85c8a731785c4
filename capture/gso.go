package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
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
	mu     sync.Mutex
	prefix [virtioNetHdrLen + ethHdrLen]byte
	iov    []unix.Iovec
	msg    unix.Msghdr
	closed atomic.Bool
}

const (
	virtioNetHdrLen       = 10 // struct virtio_net_hdr (no num_buffers)
	ethHdrLen             = 14
	virtioNetHdrFNeedCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	virtioNetHdrGSOTCPv4  = 1 // VIRTIO_NET_HDR_GSO_TCPV4
)

// OpenGSOSender opens an AF_PACKET socket on interface ifindex that sends
// to the link-layer address of nextHop (which must be in the neighbour
// table already). It fails cleanly where GSO cannot work (no neighbour
// entry, a device without a link-layer address such as loopback, or a
// kernel without PACKET_VNET_HDR): callers then keep sending per segment.
func OpenGSOSender(ifindex int, nextHop netip.Addr) (*GSOSender, error) {
	ifi, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return nil, fmt.Errorf("GSO sender: interface %d: %w", ifindex, err)
	}
	if len(ifi.HardwareAddr) != 6 || ifi.Flags&net.FlagLoopback != 0 {
		return nil, fmt.Errorf("GSO sender: %s has no Ethernet address", ifi.Name)
	}
	mac, err := neighbour(ifi.Name, nextHop)
	if err != nil {
		return nil, fmt.Errorf("GSO sender: %w", err)
	}
	// Protocol 0: this socket only sends, it never receives a frame.
	// SOCK_RAW (we write the Ethernet header) because the kernel accepts
	// PACKET_VNET_HDR only on raw packet sockets.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("GSO sender: AF_PACKET socket: %w", permissionError(err))
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("GSO sender: PACKET_VNET_HDR: %w", err)
	}
	file := os.NewFile(uintptr(fd), "af_packet-gso")
	conn, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("GSO sender: %w", err)
	}
	g := &GSOSender{file: file, conn: conn, iov: make([]unix.Iovec, 0, 64)}
	// Protocol 0 in the address: the kernel takes it from the Ethernet
	// header (packet_parse_headers).
	g.to = unix.RawSockaddrLinklayer{Family: unix.AF_PACKET, Ifindex: int32(ifindex), Halen: 6}
	copy(g.to.Addr[:], mac)
	eth := g.prefix[virtioNetHdrLen:]
	copy(eth[0:6], mac)
	copy(eth[6:12], ifi.HardwareAddr)
	binary.BigEndian.PutUint16(eth[12:], ethPIP)
	return g, nil
}

// neighbour reads the link-layer address of addr on interface dev from
// /proc/net/arp (the calling process's network namespace).
func neighbour(dev string, addr netip.Addr) (net.HardwareAddr, error) {
	f, err := os.Open("/proc/net/arp")
	if err != nil {
		return nil, fmt.Errorf("reading the neighbour table: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
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
	return g.file.Close()
}

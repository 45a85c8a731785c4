package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Injector sends complete IP packets, IPv4 or IPv6, through raw sockets:
// one per family, both opened at once so that both belong to the caller's
// network namespace.
//
// Why raw sockets from x/sys/unix rather than x/net/ipv4.RawConn and
// x/net/ipv6: RawConn wants the header as a parsed ipv4.Header and
// marshals it again, and x/net/ipv6 has no header-included raw socket at
// all, while the stack already hands over finished bytes from craft; an
// IPPROTO_RAW socket (which implies IP_HDRINCL, raw(7), and IPV6_HDRINCL,
// Linux 4.5) sends them as they are with one sendto.
//
// Why a raw socket and not AF_PACKET for IPv6 too: the kernel routes the
// packet and resolves the next hop's link-layer address (neighbour
// discovery, RFC 4861) itself, as for IPv4 with ARP, so the first packet
// to a peer needs nothing resolved beforehand, and OUTPUT firewall rules
// apply as to any local traffic. The GSOSender's AF_PACKET path, which
// needs the neighbour entry, is used only once the handshake has made the
// kernel resolve it. Measured (BenchmarkSYNToSYNACK, lab veth, 2-core VM,
// two runs of 3000 SYNs): from sendto to ReadFrame returning the SYN-ACK,
// 14.2-16.5 µs over IPv6 against 13.9-15.9 µs over IPv4 — the raw IPv6
// socket costs nothing the IPv4 one does not, so there is no latency to
// win by skipping the IP layer for small packets.
//
// What the kernel still does to a packet: for IPv4 (raw(7), IP_HDRINCL)
// it always fills in the total length and header checksum, and the IP ID
// when it is 0; for IPv6 it changes nothing (the payload length must be
// right). Build packets with those fields right (and the IPv4 ID non-zero)
// so that what tcpcraft records in pcap files and traces is what went on
// the wire. The kernel routes by the destination address and refuses
// packets larger than the route's (IPv4) or the device's (IPv6) MTU with
// EMSGSIZE: it does not fragment them.
//
// Send and SendBatch may be called from several goroutines; Close is safe
// to call more than once and concurrently with them.
type Injector struct {
	v4, v6 *rawSocket
	// v6Err is why there is no IPv6 socket (a kernel without IPv6).
	v6Err error

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	// SendBatch's sendmmsg vectors, reused under batchMu.
	batchMu sync.Mutex
	msgs    [maxBatch]unix.Mmsghdr
	iovs    [maxBatch]unix.Iovec
	names4  [maxBatch]unix.RawSockaddrInet4
	names6  [maxBatch]unix.RawSockaddrInet6
	stamps  txStamper // the error queues' buffers, under batchMu
}

// rawSocket is one pollable raw socket.
type rawSocket struct {
	file *os.File
	conn syscall.RawConn
}

// OpenInjector opens the raw IPv4 and IPv6 sockets in the network namespace
// of the calling thread. A kernel without IPv6 gives an Injector that
// sends IPv4 only (and says why on an IPv6 send).
func OpenInjector() (*Injector, error) {
	v4, err := openRaw(unix.AF_INET, unix.IPPROTO_IP, unix.IP_HDRINCL, "raw-ipv4")
	if err != nil {
		return nil, fmt.Errorf("opening raw IPv4 socket: %w", err)
	}
	in := &Injector{v4: v4}
	in.v6, err = openRaw(unix.AF_INET6, unix.IPPROTO_IPV6, unix.IPV6_HDRINCL, "raw-ipv6")
	switch {
	case errors.Is(err, unix.EAFNOSUPPORT):
		in.v6Err = fmt.Errorf("this kernel has no IPv6: %w", err)
	case err != nil:
		v4.file.Close()
		return nil, fmt.Errorf("opening raw IPv6 socket: %w", err)
	}
	return in, nil
}

// openRaw opens a pollable IPPROTO_RAW socket of family with the
// header-included option set.
func openRaw(family, level, hdrincl int, name string) (*rawSocket, error) {
	fd, err := unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_RAW)
	if err != nil {
		return nil, permissionError(err)
	}
	// IPPROTO_RAW implies it; saying so costs nothing and documents it.
	if err := unix.SetsockoptInt(fd, level, hdrincl, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("header-included option: %w", err)
	}
	// Pollable, so a full send buffer makes Send wait in the Go poller
	// rather than fail with EAGAIN, and Close cannot race a send onto a
	// reused descriptor number.
	file := os.NewFile(uintptr(fd), name)
	conn, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, err
	}
	return &rawSocket{file: file, conn: conn}, nil
}

// Send sends one complete IPv4 or IPv6 packet (header included) to the
// destination address in its header.
func (in *Injector) Send(pkt []byte) error {
	to, dst, err := packetDestination(pkt)
	if err != nil {
		return fmt.Errorf("sending packet: %w", err)
	}
	sock := in.v4
	if dst.Is6() {
		if in.v6 == nil {
			return fmt.Errorf("sending %d-byte packet to %s: %w", len(pkt), dst, in.v6Err)
		}
		sock = in.v6
	}
	if err := in.write(sock, func(fd int) error { return unix.Sendto(fd, pkt, 0, to) }); err != nil {
		return fmt.Errorf("sending %d-byte packet to %s: %w", len(pkt), dst, sendError(err, len(pkt)))
	}
	return nil
}

// SendBatch sends the packets in order and returns how many were sent; on
// an error the rest are not sent. Runs of packets of one family go in one
// sendmmsg(2): a listener answering a SYN flood sends a SYN-ACK per SYN,
// and on a virtual machine the system call around each small packet cost
// as much as the kernel's work on it. (x/sys/unix has no sendmmsg
// wrapper, hence the raw system call.)
func (in *Injector) SendBatch(pkts [][]byte) (int, error) {
	in.batchMu.Lock()
	defer in.batchMu.Unlock()
	sent := 0
	for sent < len(pkts) {
		n, err := in.sendRun(pkts[sent:])
		sent += n
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// maxBatch bounds the packets of one sendmmsg call.
const maxBatch = 64

// sendRun sends the longest run at the front of pkts whose packets share
// a family (at most maxBatch) with one sendmmsg, and returns how many
// went. Called with batchMu held.
func (in *Injector) sendRun(pkts [][]byte) (int, error) {
	n := 0
	var sock *rawSocket
	for ; n < len(pkts) && n < maxBatch; n++ {
		_, dst, err := packetDestination(pkts[n])
		if err != nil {
			if n == 0 {
				return 0, fmt.Errorf("sending packet: %w", err)
			}
			break
		}
		s := in.v4
		if dst.Is6() {
			if in.v6 == nil {
				if n == 0 {
					return 0, fmt.Errorf("sending %d-byte packet to %s: %w", len(pkts[n]), dst, in.v6Err)
				}
				break
			}
			s = in.v6
		}
		if sock != nil && s != sock {
			break
		}
		sock = s
		in.fillMsg(n, pkts[n], dst)
	}
	done := 0
	err := in.write(sock, func(fd int) error {
		for done < n {
			r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&in.msgs[done])), uintptr(n-done), 0, 0, 0)
			if errno != 0 {
				return errno
			}
			if r == 0 {
				return unix.EIO // sendmmsg(2) sends at least one or fails
			}
			done += int(r)
		}
		return nil
	})
	runtime.KeepAlive(pkts)
	if err != nil {
		return done, fmt.Errorf("sending %d-byte packet: %w", len(pkts[done]), sendError(err, len(pkts[done])))
	}
	return done, nil
}

// fillMsg sets message i of the batch to send pkt to dst. Called with
// batchMu held.
func (in *Injector) fillMsg(i int, pkt []byte, dst netip.Addr) {
	m := &in.msgs[i]
	*m = unix.Mmsghdr{}
	in.iovs[i] = unix.Iovec{Base: &pkt[0]}
	in.iovs[i].SetLen(len(pkt))
	m.Hdr.Iov, m.Hdr.Iovlen = &in.iovs[i], 1
	if dst.Is4() {
		a := &in.names4[i]
		*a = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: dst.As4()}
		m.Hdr.Name, m.Hdr.Namelen = (*byte)(unsafe.Pointer(a)), unix.SizeofSockaddrInet4
		return
	}
	a := &in.names6[i]
	*a = unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: dst.As16()}
	m.Hdr.Name, m.Hdr.Namelen = (*byte)(unsafe.Pointer(a)), unix.SizeofSockaddrInet6
}

// write runs send on the socket, waiting for room in the send buffer when
// it reports EAGAIN.
func (in *Injector) write(sock *rawSocket, send func(fd int) error) error {
	var sendErr error
	err := sock.conn.Write(func(fd uintptr) bool {
		sendErr = send(int(fd))
		return !errors.Is(sendErr, unix.EAGAIN)
	})
	if err != nil && in.closed.Load() {
		return net.ErrClosed
	}
	if err != nil {
		return err
	}
	return sendErr
}

// Close closes the sockets. It is safe to call more than once.
func (in *Injector) Close() error {
	if in == nil {
		return nil
	}
	in.closeOnce.Do(func() {
		in.closed.Store(true)
		var errs []error
		for _, s := range []*rawSocket{in.v4, in.v6} {
			if s != nil {
				if err := s.file.Close(); err != nil {
					errs = append(errs, fmt.Errorf("closing %s socket: %w", s.file.Name(), err))
				}
			}
		}
		in.closeErr = errors.Join(errs...)
	})
	return in.closeErr
}

// packetDestination checks that pkt starts with a plausible IPv4 or IPv6
// header and returns its destination address, as a socket address and as
// an address. This is all the parsing the injector does.
func packetDestination(pkt []byte) (unix.Sockaddr, netip.Addr, error) {
	if len(pkt) < 1 {
		return nil, netip.Addr{}, errors.New("empty packet")
	}
	switch v := pkt[0] >> 4; v {
	case 4:
		if len(pkt) < 20 {
			return nil, netip.Addr{}, fmt.Errorf("%d bytes is shorter than an IPv4 header", len(pkt))
		}
		if ihl := int(pkt[0]&0x0f) * 4; ihl < 20 || ihl > len(pkt) {
			return nil, netip.Addr{}, fmt.Errorf("IPv4 header length %d does not fit the %d-byte packet", ihl, len(pkt))
		}
		to := &unix.SockaddrInet4{Addr: [4]byte(pkt[16:20])}
		return to, netip.AddrFrom4(to.Addr), nil
	case 6:
		if len(pkt) < ip6HeaderLen {
			return nil, netip.Addr{}, fmt.Errorf("%d bytes is shorter than an IPv6 header", len(pkt))
		}
		if plen := int(binary.BigEndian.Uint16(pkt[4:6])); ip6HeaderLen+plen != len(pkt) {
			return nil, netip.Addr{}, fmt.Errorf("IPv6 payload length %d does not match the %d-byte packet", plen, len(pkt))
		}
		to := &unix.SockaddrInet6{Addr: [16]byte(pkt[24:40])}
		dst := netip.AddrFrom16(to.Addr)
		if dst.Is4In6() {
			return nil, netip.Addr{}, fmt.Errorf("IPv6 destination %s is IPv4-mapped; send IPv4 instead", dst)
		}
		return to, dst, nil
	default:
		return nil, netip.Addr{}, fmt.Errorf("IP version %d, want 4 or 6", v)
	}
}

// sendError explains the errors a raw send commonly meets.
func sendError(err error, size int) error {
	switch {
	case errors.Is(err, unix.EMSGSIZE):
		return fmt.Errorf("%d bytes exceed the MTU (the kernel does not fragment raw packets): %w", size, err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("refused by a firewall OUTPUT rule or missing CAP_NET_RAW: %w", err)
	}
	return err
}

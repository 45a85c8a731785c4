package capture

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Injector sends complete IPv4 packets through a raw socket.
//
// Why a raw socket from x/sys/unix rather than x/net/ipv4.RawConn: RawConn
// wants the header as a parsed ipv4.Header and marshals it again, while the
// stack already hands over finished bytes from craft; an IPPROTO_RAW socket
// (which implies IP_HDRINCL, raw(7)) sends them as they are with one sendto.
//
// What the kernel still does to a packet (raw(7), IP_HDRINCL): it always
// fills in the IP total length and header checksum, and the IP ID when it
// is 0. Build packets with those fields right (and the ID non-zero) so that
// what tcpcraft records in pcap files and traces is what went on the wire.
// The kernel routes by the destination address and refuses packets larger
// than the route's MTU (EMSGSIZE): it does not fragment them.
//
// Send and SendBatch may be called from several goroutines; Close is safe
// to call more than once and concurrently with them.
type Injector struct {
	file *os.File
	conn syscall.RawConn

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

// OpenInjector opens a raw IPv4 socket in the network namespace of the
// calling thread.
func OpenInjector() (*Injector, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_RAW)
	if err != nil {
		return nil, fmt.Errorf("opening raw IPv4 socket: %w", permissionError(err))
	}
	// IPPROTO_RAW implies IP_HDRINCL; saying so costs nothing and documents it.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_HDRINCL, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("opening raw IPv4 socket: IP_HDRINCL: %w", err)
	}
	// Pollable, so a full send buffer makes Send wait in the Go poller
	// rather than fail with EAGAIN, and Close cannot race a send onto a
	// reused descriptor number.
	file := os.NewFile(uintptr(fd), "raw-ipv4")
	conn, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("opening raw IPv4 socket: %w", err)
	}
	return &Injector{file: file, conn: conn}, nil
}

// Send sends one complete IPv4 packet (header included) to the destination
// address in its header.
func (in *Injector) Send(pkt []byte) error {
	to, err := packetDestination(pkt)
	if err != nil {
		return fmt.Errorf("sending packet: %w", err)
	}
	if err := in.write(func(fd int) error { return unix.Sendto(fd, pkt, 0, to) }); err != nil {
		return fmt.Errorf("sending %d-byte packet to %s: %w", len(pkt), netip.AddrFrom4(to.Addr), sendError(err, len(pkt)))
	}
	return nil
}

// SendBatch sends the packets in order and returns how many were sent; on
// an error the rest are not sent. (One sendto per packet today; the
// signature leaves room for sendmmsg.)
func (in *Injector) SendBatch(pkts [][]byte) (int, error) {
	for i, p := range pkts {
		if err := in.Send(p); err != nil {
			return i, err
		}
	}
	return len(pkts), nil
}

// write runs send on the descriptor, waiting for room in the send buffer
// when it reports EAGAIN.
func (in *Injector) write(send func(fd int) error) error {
	var sendErr error
	err := in.conn.Write(func(fd uintptr) bool {
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

// Close closes the socket. It is safe to call more than once.
func (in *Injector) Close() error {
	if in == nil {
		return nil
	}
	in.closeOnce.Do(func() {
		in.closed.Store(true)
		if err := in.file.Close(); err != nil {
			in.closeErr = fmt.Errorf("closing raw IPv4 socket: %w", err)
		}
	})
	return in.closeErr
}

// packetDestination checks that pkt starts with a plausible IPv4 header and
// returns its destination address. This is all the parsing the injector
// does.
func packetDestination(pkt []byte) (*unix.SockaddrInet4, error) {
	if len(pkt) < 20 {
		return nil, fmt.Errorf("%d bytes is shorter than an IPv4 header", len(pkt))
	}
	if v := pkt[0] >> 4; v != 4 {
		return nil, fmt.Errorf("IP version %d, want 4", v)
	}
	if ihl := int(pkt[0]&0x0f) * 4; ihl < 20 || ihl > len(pkt) {
		return nil, fmt.Errorf("IPv4 header length %d does not fit the %d-byte packet", ihl, len(pkt))
	}
	to := &unix.SockaddrInet4{}
	copy(to.Addr[:], pkt[16:20])
	return to, nil
}

// sendError explains the errors a raw send commonly meets.
func sendError(err error, size int) error {
	switch {
	case errors.Is(err, unix.EMSGSIZE):
		return fmt.Errorf("%d bytes exceed the route's MTU (the kernel does not fragment raw packets): %w", size, err)
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("refused by a firewall OUTPUT rule or missing CAP_NET_RAW: %w", err)
	}
	return err
}

package probe

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/tcpcraft/tcpcraft/capture"
	"github.com/tcpcraft/tcpcraft/lab"
)

// The tun driver's offload flags (linux/if_tun.h) and virtio_net_hdr's GSO
// types (linux/virtio_net.h), which x/sys/unix does not define.
const (
	tunFCsum    = 0x01
	tunFTSO4    = 0x02
	tunFTSO6    = 0x04
	tunFTSOECN  = 0x08
	gsoTCPv4    = 1
	gsoTCPv6    = 4
	vnetHdrSize = 10 // struct virtio_net_hdr without num_buffers
)

// tunLink is the kernel under test's side of packetdrill's test bed: the
// tun device tun0 in the kernel's namespace. tcpcraft writes its packets
// into the device, so the kernel receives each as one skb built by the tun
// driver, as under packetdrill: the same allocation and truesize, and with
// --mss a GSO packet of that segment size, whatever its length. The receive
// window the kernel advertises depends on both (tcp_measure_rcv_mss takes
// gso_size for the peer's MSS and skb->len/truesize for scaling_ratio).
// The kernel's packets are captured on tun0 as they leave (an AF_PACKET
// tap, stamped by the kernel, as packetdrill's packet socket) and drained
// from the device, which then frees them.
type tunLink struct {
	file *os.File
	cap  *capture.Capture
	// mss is the gso_size of inbound TCP packets (packetdrill's --mss);
	// 0 writes them without GSO.
	mss int

	mu      sync.Mutex // serializes writes (one header, one packet)
	drained chan struct{}
}

// openTun creates the tun device name in namespace ns with packetdrill's
// flags and offloads (IFF_TUN|IFF_NO_PI|IFF_VNET_HDR; checksum and TSO, as
// a typical Ethernet card), and returns its descriptor. The device lives
// as long as the descriptor.
func openTun(ns, name string) (*os.File, error) {
	var file *os.File
	err := lab.Do(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("opening /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("creating tun device %s (TUNSETIFF): %w", name, err)
		}
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, tunFCsum|tunFTSO4|tunFTSO6|tunFTSOECN); err != nil {
			unix.Close(fd)
			return fmt.Errorf("tun device %s: TUNSETOFFLOAD: %w", name, err)
		}
		// Non-blocking, so that the runtime's poller waits for it and
		// Close wakes the drain.
		file = os.NewFile(uintptr(fd), "/dev/net/tun:"+name)
		return nil
	})
	return file, err
}

// newTunLink captures, in namespace ns, what the kernel sends out of
// ifindex (the tun device of file) to tcpcraft's address local, and
// drains the device.
func newTunLink(ns string, file *os.File, ifindex int, local netip.Addr, mss int) (*tunLink, error) {
	l := &tunLink{file: file, mss: mss, drained: make(chan struct{})}
	err := lab.Do(ns, func() (err error) {
		// KeepOutgoing: on tun0 the kernel's packets are the outgoing
		// ones; tcpcraft's own (incoming, to the kernel's address) are
		// not in the scope.
		l.cap, err = capture.OpenScope(ifindex, capture.Scope{Local: []netip.Addr{local}, PortLow: 1, PortHigh: 65535},
			capture.Config{KeepOutgoing: true})
		return err
	})
	if err != nil {
		return nil, err
	}
	go l.drain()
	return l, nil
}

// drain reads the kernel's packets off the device until it is closed: the
// capture has them already, and the device's queue must not fill up
// (packetdrill's local_netdev_read_queue).
func (l *tunLink) drain() {
	defer close(l.drained)
	buf := make([]byte, 65536+vnetHdrSize)
	for {
		// The runtime's poller waits for the descriptor; any error but
		// an interruption is its closing.
		if _, err := l.file.Read(buf); err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// Send writes one IP packet into the device behind a virtio_net_hdr: with
// an MSS, a TCP packet is marked GSO with that segment size, as packetdrill
// writes it (linux_tun_write in netdev.c).
func (l *tunLink) Send(pkt []byte) error {
	var hdr [vnetHdrSize]byte
	if l.mss > 0 && len(pkt) > 0 {
		switch {
		case pkt[0]>>4 == 4 && len(pkt) >= 20 && pkt[9] == unix.IPPROTO_TCP:
			hdr[1] = gsoTCPv4
		case pkt[0]>>4 == 6 && len(pkt) >= 40 && pkt[6] == unix.IPPROTO_TCP:
			hdr[1] = gsoTCPv6
		}
		if hdr[1] != 0 {
			binary.NativeEndian.PutUint16(hdr[4:], uint16(l.mss))
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	conn, err := l.file.SyscallConn()
	if err != nil {
		return err
	}
	var werr error
	err = conn.Write(func(fd uintptr) bool {
		_, werr = unix.Writev(int(fd), [][]byte{hdr[:], pkt})
		return !errors.Is(werr, unix.EAGAIN)
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return fmt.Errorf("writing %d bytes to tun0: %w", len(pkt), err)
	}
	return nil
}

// ReadFrame returns the next packet the kernel sent to tcpcraft.
func (l *tunLink) ReadFrame(ctx context.Context) (capture.Frame, error) {
	return l.cap.ReadFrame(ctx)
}

// Close removes the device (closing its descriptor) and the capture.
func (l *tunLink) Close() error {
	err := l.file.Close()
	<-l.drained
	return errors.Join(err, l.cap.Close())
}

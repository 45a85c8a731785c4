package capture

import (
	"encoding/binary"
	"errors"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Transmit timestamps: when the device's driver took a packet a sender
// sent (skb_tx_timestamp, SOF_TIMESTAMPING_TX_SOFTWARE), on the same
// clock (CLOCK_REALTIME) and at the same layer as the capture time of a
// received frame (Frame.Time). A round trip timed from one to the other
// is wire to wire, as tcpdump on the interface would show it, and leaves
// out what happens in this process and in the system call before the
// packet reaches the device. The kernel queues each timestamp with a copy
// of the packet on the sending socket's error queue (timestamping.rst in
// the kernel's networking documentation); TxStamps reads them.

// txStampFlags asks for a software timestamp of every packet the socket
// sends, reported with the packet (no SOF_TIMESTAMPING_OPT_TSONLY: the
// packet says which one it was).
const txStampFlags = unix.SOF_TIMESTAMPING_TX_SOFTWARE | unix.SOF_TIMESTAMPING_SOFTWARE

// txStampQueueBytes is the error queue's room: each entry is a clone of
// a sent packet, charged to the socket's receive buffer, and a batch of
// 256 probes must fit between two reads or its last timestamps are lost.
const txStampQueueBytes = 4 << 20

// TxStamp is one sent packet's transmit timestamp.
type TxStamp struct {
	// Packet is the sent packet from its IP header on; it is valid only
	// while the callback runs.
	Packet []byte
	// Time is when the device's driver took the packet.
	Time time.Time
}

// txStamper reads a socket's error queue; its buffers are reused.
type txStamper struct {
	buf, oob []byte
}

// enableTxStamps turns transmit timestamps on for the socket fd.
func enableTxStamps(fd int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, txStampFlags); err != nil {
		return err
	}
	// Best effort: without CAP_NET_ADMIN the default buffer stays, and a
	// long batch loses its last timestamps (their senders keep their own).
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, txStampQueueBytes)
	return nil
}

// read hands every timestamp on fd's error queue to fn and returns how
// many it read; it does not wait.
func (t *txStamper) read(fd int, fn func(TxStamp)) (int, error) {
	if t.buf == nil {
		t.buf, t.oob = make([]byte, 2048), make([]byte, 512)
	}
	n := 0
	for {
		size, oobn, _, _, err := unix.Recvmsg(fd, t.buf, t.oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if errors.Is(err, unix.EAGAIN) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		at, ok := txStampTime(t.oob[:oobn])
		if !ok {
			continue
		}
		pkt := ipStart(t.buf[:min(size, len(t.buf))])
		if pkt == nil {
			continue
		}
		n++
		fn(TxStamp{Packet: pkt, Time: at})
	}
}

// txStampTime reads the software timestamp of a sent packet from an
// error-queue message's control messages: SCM_TIMESTAMPING's first
// timespec, with a sock_extended_err of SO_EE_ORIGIN_TIMESTAMPING saying
// it is the driver's (SCM_TSTAMP_SND). It walks the messages in place
// (unix.ParseSocketControlMessage would allocate for each packet).
func txStampTime(oob []byte) (time.Time, bool) {
	var at time.Time
	var haveTime, sent bool
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if h.Len < unix.SizeofCmsghdr || h.Len > uint64(len(oob)) {
			break
		}
		data := oob[unix.CmsgLen(0):h.Len]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_TIMESTAMPING && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			if ts.Sec != 0 || ts.Nsec != 0 {
				at, haveTime = time.Unix(ts.Sec, ts.Nsec), true
			}
		case isRecvErr(h.Level, h.Type) && len(data) >= int(unsafe.Sizeof(unix.SockExtendedErr{})):
			e := (*unix.SockExtendedErr)(unsafe.Pointer(&data[0]))
			sent = e.Origin == unix.SO_EE_ORIGIN_TIMESTAMPING && e.Info == unix.SCM_TSTAMP_SND
		}
		next := unix.CmsgSpace(int(h.Len) - unix.CmsgLen(0))
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return at, haveTime && sent
}

// isRecvErr says whether a control message is a sock_extended_err: the
// IPv4, IPv6 or packet socket's kind.
func isRecvErr(level, typ int32) bool {
	switch {
	case level == unix.SOL_IP && typ == unix.IP_RECVERR,
		level == unix.SOL_IPV6 && typ == unix.IPV6_RECVERR,
		level == unix.SOL_PACKET && typ == unix.PACKET_TX_TIMESTAMP:
		return true
	}
	return false
}

// ipStart finds the IP packet in a looped-back copy of a sent one: the
// copy is taken at the driver, so on a device with an Ethernet header it
// starts with that header (14 bytes), else with the IP header. A header
// is taken only where its length field matches the copy's length.
func ipStart(b []byte) []byte {
	for _, off := range []int{0, 14} {
		if off > 0 && (len(b) < off || (binary.BigEndian.Uint16(b[off-2:off]) != ethPIP && binary.BigEndian.Uint16(b[off-2:off]) != ethPIPv6)) {
			continue
		}
		p := b[off:]
		switch {
		case len(p) >= 20 && p[0]>>4 == 4 && int(binary.BigEndian.Uint16(p[2:4])) == len(p):
			return p
		case len(p) >= ip6HeaderLen && p[0]>>4 == 6 && ip6HeaderLen+int(binary.BigEndian.Uint16(p[4:6])) == len(p):
			return p
		}
	}
	return nil
}

// EnableTxStamps has the kernel timestamp every packet the sender sends
// when the device's driver takes it; TxStamps reads them.
func (s *LinkSender) EnableTxStamps() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		return errors.New("link sender closed")
	}
	return enableTxStamps(s.fd)
}

// TxStamps hands fn the transmit timestamps the kernel has queued since
// the last call (EnableTxStamps), in the order the packets went, and
// returns how many; it does not wait.
func (s *LinkSender) TxStamps(fn func(TxStamp)) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.open {
		return 0, nil
	}
	return s.stamps.read(s.fd, fn)
}

// EnableTxStamps has the kernel timestamp every packet the injector
// sends when the device's driver takes it; TxStamps reads them.
func (in *Injector) EnableTxStamps() error {
	for _, s := range []*rawSocket{in.v4, in.v6} {
		if s == nil {
			continue
		}
		var err error
		if cerr := s.conn.Control(func(fd uintptr) { err = enableTxStamps(int(fd)) }); cerr != nil {
			return cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// TxStamps hands fn the transmit timestamps the kernel has queued since
// the last call (EnableTxStamps), IPv4's then IPv6's, and returns how
// many; it does not wait.
func (in *Injector) TxStamps(fn func(TxStamp)) (int, error) {
	in.batchMu.Lock()
	defer in.batchMu.Unlock()
	total := 0
	for _, s := range []*rawSocket{in.v4, in.v6} {
		if s == nil {
			continue
		}
		var n int
		var err error
		if cerr := s.conn.Control(func(fd uintptr) { n, err = in.stamps.read(int(fd), fn) }); cerr != nil {
			return total, nil // closed
		}
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

package capture

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A Capture opened with Config.Queue has no ring: the kernel queues each
// frame on the socket (packet_rcv in net/packet/af_packet.c) and the
// frames are read a batch at a time with recvmmsg(2). What the ring's slot
// header says of a frame comes with it as ancillary data: PACKET_AUXDATA
// carries the same tp_status bits (TP_STATUS_CSUMNOTREADY,
// TP_STATUS_CSUM_VALID) and the length on the wire, SO_TIMESTAMPNS the
// capture time, and the sockaddr_ll the interface, protocol and direction.
//
// Why have it: setting up a ring and tearing it down each wait for an RCU
// grace period (synchronize_net in packet_set_ring, which packet_release
// also calls for a ring, besides its own), 8-16 ms each on a machine with
// HZ=250; a socket without a ring pays only its release's. The ring's
// gain is bulk (no system call while frames are waiting); a batch of
// recvmmsg takes most of that (docs/PERFORMANCE.md, "Start-up").

const (
	// queueSlotsFirst is the first batch's size: a short exchange (a
	// handshake, a request, its answer, the close) never needs more, and
	// each slot is a snap length of memory.
	queueSlotsFirst = 4
	// queueSlotsMax bounds the batch: the slots double each time a batch
	// comes back full, up to this.
	queueSlotsMax = 64
	// queueBytes is the socket's receive buffer: the kernel counts each
	// queued frame's whole buffer (a 64 KB segment's truesize), and a
	// bulk download's burst must fit while the process waits for a CPU,
	// as the 5 MiB ring's 75 slots do.
	queueBytes = 8 << 20
	// queueOOBLen holds one frame's ancillary data: a struct
	// tpacket_auxdata and a struct timespec, each behind a cmsghdr.
	queueOOBLen = 128
)

// rxQueue is the batch of frames one recvmmsg read, handed out in order.
// It is guarded by the Capture's readMu.
type rxQueue struct {
	snap  int
	bufs  [][]byte
	names []unix.RawSockaddrLinklayer
	oob   []byte
	iovs  []unix.Iovec
	msgs  []unix.Mmsghdr
	n     int  // frames in the batch
	next  int  // the next one to hand out
	grow  bool // the last batch filled every slot: double them before the next
}

func newRxQueue(snap int) *rxQueue {
	q := &rxQueue{snap: snap}
	q.resize(queueSlotsFirst)
	return q
}

// resize makes n slots. Only while no frame of a batch is out.
func (q *rxQueue) resize(n int) {
	q.bufs = make([][]byte, n)
	for i := range q.bufs {
		q.bufs[i] = make([]byte, q.snap)
	}
	q.names = make([]unix.RawSockaddrLinklayer, n)
	q.oob = make([]byte, n*queueOOBLen)
	q.iovs = make([]unix.Iovec, n)
	q.msgs = make([]unix.Mmsghdr, n)
	for i := range q.msgs {
		q.iovs[i] = unix.Iovec{Base: &q.bufs[i][0]}
		q.iovs[i].SetLen(q.snap)
		h := &q.msgs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&q.names[i]))
		h.Iov, h.Iovlen = &q.iovs[i], 1
		h.Control = &q.oob[i*queueOOBLen]
	}
}

// empty reports whether every frame of the batch has been handed out.
func (q *rxQueue) empty() bool { return q.next >= q.n }

// fill reads the next batch from fd without waiting; it finds none (nil
// error, q still empty) when the socket's queue is empty. Only when empty.
func (q *rxQueue) fill(fd int) error {
	if q.grow {
		q.grow = false
		q.resize(min(2*len(q.msgs), queueSlotsMax))
	}
	q.n, q.next = 0, 0
	for i := range q.msgs {
		m := &q.msgs[i]
		m.Len = 0
		m.Hdr.Namelen = unix.SizeofSockaddrLinklayer
		m.Hdr.SetControllen(queueOOBLen)
		m.Hdr.Flags = 0
	}
	for {
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&q.msgs[0])), uintptr(len(q.msgs)), unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			q.n = int(r)
			q.grow = q.n == len(q.msgs) && len(q.msgs) < queueSlotsMax
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return nil
		}
		return errno
	}
}

// take hands out the next frame of the batch, in place: f.Data is valid
// until the next fill. isIP is false for a frame of another protocol
// (possible only on a socket bound to every protocol), which is skipped.
func (q *rxQueue) take() (f Frame, isIP bool) {
	i := q.next
	q.next++
	m := &q.msgs[i]
	sll := &q.names[i]
	n := min(int(m.Len), q.snap)
	f = Frame{
		Data:      q.bufs[i][:n:n],
		Length:    n,
		Interface: int(sll.Ifindex),
		Outgoing:  sll.Pkttype == unix.PACKET_OUTGOING,
	}
	oob := q.oob[i*queueOOBLen : i*queueOOBLen+min(int(m.Hdr.Controllen), queueOOBLen)]
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		if int(h.Len) < unix.SizeofCmsghdr || int(h.Len) > len(oob) {
			break
		}
		data := oob[unix.SizeofCmsghdr:h.Len]
		switch {
		case h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA && len(data) >= int(unsafe.Sizeof(unix.TpacketAuxdata{})):
			aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&data[0]))
			f.Length = int(aux.Len)
			f.ChecksumNotReady = aux.Status&unix.TP_STATUS_CSUMNOTREADY != 0
			f.ChecksumValid = aux.Status&unix.TP_STATUS_CSUM_VALID != 0
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= int(unsafe.Sizeof(unix.Timespec{})):
			ts := (*unix.Timespec)(unsafe.Pointer(&data[0]))
			f.Time = time.Unix(ts.Unix())
		}
		step := cmsgAlign(int(h.Len))
		if step > len(oob) {
			break
		}
		oob = oob[step:]
	}
	if f.Time.IsZero() {
		f.Time = time.Now()
	}
	if f.Length < n {
		f.Length = n
	}
	return f, sll.Protocol == htons(ethPIP) || sll.Protocol == htons(ethPIPv6)
}

// cmsgAlign rounds a control message's length up to the kernel's
// alignment (CMSG_ALIGN).
func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}

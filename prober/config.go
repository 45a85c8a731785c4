package prober

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// Config is one run: what to probe, with what, how fast, and who hears
// about it.
type Config struct {
	// Targets are the HOST:PORTS arguments (ParseTarget); Lookup
	// resolves their names (nil: the system's resolver).
	Targets []TargetSpec
	Lookup  Lookup

	// The TCP probe. Seq and Ack are used when SeqSet and AckSet;
	// otherwise each probe's sequence number (and, for a probe with ACK,
	// its acknowledgement number) carries the probe's number from a
	// random start, which is how answers are matched to probes.
	Flags          craft.Flags
	Seq, Ack       craft.Seq
	SeqSet, AckSet bool
	Window, Urgent uint16
	Options        []craft.Option
	Payload        []byte

	// IP is the IP header of the probes.
	IP IPHeader

	// Src, when valid, is the source address of every probe of its
	// family (hping3's --spoof). An address that is not this host's
	// needs Force, and then no answer is expected: the run neither
	// guards nor captures.
	Src   netip.Addr
	Force bool
	// SrcPort fixes the source port; 0 means a block of ports outside
	// ip_local_port_range, a fresh one for each probe in turn, or a
	// random one of the block when RandomSrcPort.
	SrcPort       uint16
	RandomSrcPort bool
	// Iface, when set, is the interface every probe leaves by, with its
	// address as the source (else each target's route decides).
	Iface string

	// Count is the number of probes per target; 0: until the context
	// ends.
	Count int
	// Rate is the probes per second, paced evenly across all targets;
	// Flood sends as fast as the machine goes instead.
	Rate  float64
	Flood bool
	// SendTimes times round trips from just before each probe's send
	// instead of from the kernel's transmit timestamp of it (the time
	// the device's driver took it, on the clock of the answers' capture
	// times). For a flood, which times nothing it shows and would spend
	// a read of the error queue on every packet.
	SendTimes bool
	// Wait is how long a probe's answer is waited for; 0 adapts it to the
	// round-trip times seen (from 1 s down to MinWait, as nmap does).
	Wait time.Duration
	// Retries is how many times a probe that drew nothing is sent again
	// before its target counts as unanswered, when Count is 1 (nmap
	// retransmits once).
	Retries int
	// NoReset leaves SYN-ACKs unanswered: the peer keeps a half-open
	// connection and retransmits its SYN-ACK until it gives up (the local
	// kernel answers those that come after the run with RST).
	NoReset bool

	// Traceroute sends one probe per TTL, from 1 up to MaxTTL (default
	// 30), Count probes each, until the target answers.
	Traceroute bool
	MaxTTL     int

	// Handler hears about the run as it goes; Events says which kinds it
	// wants (building them costs time at high rates).
	Handler Handler
	Events  EventMask
	// Pcap, when set, gets every packet sent and every frame captured.
	Pcap PacketWriter
	// RawSocketOnly sends everything through the raw sockets, none
	// straight to the device (for comparisons).
	RawSocketOnly bool
	// Rings chooses how the capture and the device senders meet the
	// kernel: through memory-mapped rings, or with plain system calls
	// (RingsAuto: by the run's size, Config.ringless).
	Rings Rings
	// ReleaseLater: the process exits when the run is done (a command
	// line's run), so the packet sockets and the guard's, whose release
	// waits for an RCU grace period each, are left to a helper that
	// frees them after the process has exited (package release). The
	// guard's table is deleted before, all the same.
	ReleaseLater bool
}

// Rings is how a run's capture and device senders meet the kernel.
type Rings int

const (
	// RingsAuto: rings for a run that needs their throughput, none for
	// a small one (Config.ringless).
	RingsAuto Rings = iota
	// RingsOn: a receive ring for the capture (PACKET_RX_RING) and a
	// transmit ring for each device sender (PACKET_TX_RING).
	RingsOn
	// RingsOff: the capture reads frames from its socket's queue
	// (recvmmsg, capture.Config.Queue) and the device senders hand the
	// kernel batches with sendmmsg (capture.LinkConfig.NoRing).
	RingsOff
)

// A ring costs an RCU grace period to set up (synchronize_net in
// packet_set_ring: 8-16 ms on a kernel ticking at 250 Hz), two for a run
// with a capture and a device sender, most of a one-probe run's time;
// without one, a frame costs a copy in a system call. The rings pay off
// only near the machine's limit, so a run goes without them when it sends
// few probes, or sends them slowly (docs/PERFORMANCE.md, "send without
// rings for small runs", has the measurements).
const (
	// ringlessProbes: a run of at most this many probes (targets times
	// count), at any pace. Even flooded, they take the queue and
	// sendmmsg a few ms longer than the rings at most, less than the
	// rings' set-up. Retransmissions are not counted: they go a wait
	// later.
	ringlessProbes = 1024
	// ringlessRate: a paced run of at most this many probes a second,
	// however long, a fraction of what the queue and sendmmsg keep up
	// with on a busy machine.
	ringlessRate = 2000
)

// ringless says whether a run of targets targets goes without rings.
func (c *Config) ringless(targets int) bool {
	switch c.Rings {
	case RingsOn:
		return false
	case RingsOff:
		return true
	}
	if c.Traceroute {
		return true // one probe in flight at a time
	}
	if c.Count > 0 && targets > 0 && c.Count <= ringlessProbes/targets {
		return true
	}
	return !c.Flood && c.Rate > 0 && c.Rate <= ringlessRate
}

// IPHeader is what a probe's IP header carries besides its addresses.
type IPHeader struct {
	// TTL is the IPv4 TTL or IPv6 hop limit (0: 64).
	TTL uint8
	// ID is the IPv4 identification (IPv6: the fragment header's, with
	// Fragment) when IDSet; otherwise a fresh non-zero one per probe.
	ID    uint16
	IDSet bool
	// DSCP and ECN make the IPv4 TOS byte or the IPv6 traffic class
	// (RFC 2474, RFC 3168).
	DSCP, ECN uint8
	// NoDF clears IPv4's don't-fragment flag, which probes carry by
	// default as Linux's TCP segments do, except fragments (Fragment);
	// DF sets it on those too.
	NoDF, DF bool
	// MF and FragOffset (in bytes, a multiple of 8) are written into an
	// IPv4 header as given: a crafted fragment.
	MF         bool
	FragOffset int
	// Fragment splits each probe into IP fragments carrying this many
	// bytes of it (a multiple of 8; 0: whole), IPv6 with fragment headers.
	Fragment int
	// BadIPChecksum and BadTCPChecksum send wrong checksums.
	BadIPChecksum, BadTCPChecksum bool
}

// PacketWriter is where a run records its packets (pcapfile.Writer):
// WritePacket for a whole packet, WriteTruncated for a captured frame cut
// to the snap length.
type PacketWriter interface {
	WritePacket(t time.Time, pkt []byte) error
	WriteTruncated(t time.Time, data []byte, length int) error
}

// ConfigError is a Config that cannot run: a mistake of the caller's,
// found before anything on the system changed.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

func configErrorf(format string, args ...any) error {
	return &ConfigError{fmt.Errorf(format, args...)}
}

// Limits of a Config.
const (
	// DefaultMaxTTL is traceroute's last TTL unless MaxTTL says.
	DefaultMaxTTL = 30
	// MinWait is the least an adaptive wait becomes (nmap's
	// --min-rtt-timeout default).
	MinWait = 100 * time.Millisecond
	// InitialWait is the adaptive wait before any answer was timed.
	InitialWait = time.Second
	// maxPayload keeps a probe in one 1500-byte packet, options and
	// headers included.
	maxPayload = 1400
	// MaxRate bounds Rate (Flood goes faster).
	MaxRate = 10_000_000
)

// check validates c without touching the system.
func (c *Config) check() error {
	if len(c.Targets) == 0 {
		return configErrorf("no target")
	}
	if c.Count < 0 {
		return configErrorf("count %d is negative", c.Count)
	}
	if c.Rate < 0 || c.Rate > MaxRate {
		return configErrorf("rate %v: want 0 to %d probes per second", c.Rate, MaxRate)
	}
	if c.Rate == 0 && !c.Flood && !c.Traceroute {
		return configErrorf("no rate: give a rate or flood")
	}
	if c.Wait < 0 || c.Retries < 0 || c.Retries > 10 {
		return configErrorf("wait %v, retries %d: want a wait of 0 or more and 0 to 10 retries", c.Wait, c.Retries)
	}
	if c.Traceroute {
		if c.MaxTTL < 0 || c.MaxTTL > 255 {
			return configErrorf("max TTL %d: want 1 to 255", c.MaxTTL)
		}
		if c.Flood {
			return configErrorf("a traceroute goes one TTL at a time; it cannot flood")
		}
		if c.Count == 0 {
			return configErrorf("a traceroute sends a given number of probes per TTL, not 0")
		}
	}
	if len(c.Payload) > maxPayload {
		return configErrorf("payload of %d bytes: at most %d", len(c.Payload), maxPayload)
	}
	if _, err := (&craft.TCP{Options: c.Options}).HeaderLen(); err != nil {
		return &ConfigError{fmt.Errorf("options: %w", err)}
	}
	ip := c.IP
	if ip.DSCP > 63 || ip.ECN > 3 {
		return configErrorf("DSCP %d, ECN %d: want 0-63 and 0-3", ip.DSCP, ip.ECN)
	}
	if ip.FragOffset < 0 || ip.FragOffset%8 != 0 || ip.FragOffset > 0x1fff*8 {
		return configErrorf("fragment offset %d: want a multiple of 8, 0 to %d", ip.FragOffset, 0x1fff*8)
	}
	if ip.Fragment < 0 || ip.Fragment%8 != 0 {
		return configErrorf("fragments of %d bytes: want a positive multiple of 8", ip.Fragment)
	}
	if ip.Fragment > 0 && (ip.MF || ip.FragOffset != 0) {
		return configErrorf("fragmenting a probe and writing its fragment fields by hand do not go together")
	}
	if c.Src.IsValid() && (c.Src.IsUnspecified() || c.Src.IsMulticast() || c.Src.Zone() != "") {
		return configErrorf("source address %v cannot send TCP", c.Src)
	}
	if ip.NoDF && ip.DF {
		return configErrorf("don't-fragment both set and cleared")
	}
	if c.RandomSrcPort && c.SrcPort != 0 {
		return configErrorf("a fixed source port and random ones do not go together")
	}
	return nil
}

// checkFamilies refuses IPv4-only header fields for IPv6 targets and a
// source address of the other family.
func (c *Config) checkFamilies(targets []Target) error {
	has6 := false
	for _, t := range targets {
		if t.Addr.Is6() {
			has6 = true
			break
		}
	}
	if has6 {
		ip := c.IP
		switch {
		case ip.NoDF || ip.DF:
			return configErrorf("IPv6 has no don't-fragment flag: routers never fragment (RFC 8200 §4.5)")
		case ip.MF || ip.FragOffset != 0:
			return configErrorf("fragment fields by hand are IPv4 only; IPv6 fragments come from fragmenting")
		case ip.BadIPChecksum:
			return configErrorf("IPv6 has no header checksum")
		case ip.IDSet && ip.Fragment == 0:
			return configErrorf("an IPv6 packet has an identification only in a fragment header: give the fragment size too")
		}
	}
	if c.Src.IsValid() {
		src := c.Src.Unmap()
		for _, t := range targets {
			if t.Addr.Is4() != src.Is4() {
				return configErrorf("source address %v and target %v are of different families", src, t.Addr)
			}
		}
	}
	if len(targets) == 0 {
		return errors.New("no target")
	}
	return nil
}

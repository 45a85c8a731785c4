package fsm

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// Config describes one connection. Start from DefaultConfig and change what
// you need: a zero field means "the default" only where zero makes no sense
// (MSS, buffer sizes, RTO bounds, retry limits, TIME-WAIT); elsewhere zero
// is taken literally (DelayedACK 0 = acknowledge at once, WindowScale 0 =
// offer shift 0, SACK false = do not offer).
type Config struct {
	// LocalPort and RemotePort identify the connection; both must be
	// non-zero (the driver creates one Conn per 4-tuple).
	LocalPort, RemotePort uint16

	// ISS is used as the initial send sequence number when FixedISS is
	// true; otherwise the ISS is drawn from Rand (RFC 9293 §3.4.1 asks for
	// an unpredictable ISN, RFC 6528).
	ISS      craft.Seq
	FixedISS bool

	// TSOffset is the start of our timestamp clock when FixedTSOffset is
	// true; otherwise it is drawn from Rand (RFC 7323 §7.1: a random offset
	// per connection).
	TSOffset      uint32
	FixedTSOffset bool

	// Rand is the source of the ISS and the timestamp offset. nil means
	// crypto/rand. Tests pass a seeded source for repeatable runs.
	Rand io.Reader

	// MSS is the maximum segment size we advertise in our SYN (RFC 9293
	// §3.7.1) on an IPv4 connection. Default 1460.
	MSS uint16
	// MSS6 is the same on an IPv6 connection. 0 means MSS - 20: the same
	// link MTU less the 20 bytes by which the IPv6 header (40) exceeds
	// IPv4's (RFC 8200 §3; Linux derives both from the route MTU, less
	// 40 or 60).
	MSS6 uint16
	// IPv6 tells the machine that the connection runs over IPv6: it then
	// advertises MSS6, assumes the IPv6 default send MSS of 1220 when the
	// peer's SYN carries no MSS option (RFC 9293 §3.7.1: the minimum
	// IPv6 MTU of 1280, RFC 8200 §5, less 60) and, for a Listener, uses
	// the IPv6 table of SYN cookie MSS values. A Listener sets it per
	// SYN from the segment's addresses; a driver that connects sets it
	// from the peer's address.
	IPv6 bool
	// WindowScale is the shift we offer (RFC 7323 §2), 0..14, or -1 to
	// not offer the option. Default 7, like Linux.
	WindowScale int
	// SACK offers SACK-permitted (RFC 2018) and Timestamps offers the
	// timestamps option (RFC 7323 §3) on our SYN. Both default to true.
	SACK, Timestamps bool

	// NoDelay turns Nagle's algorithm (RFC 9293 §3.7.4) off. Default
	// false: Nagle on, like Linux.
	NoDelay bool

	// RecvBufferSize bounds the bytes held for the application, in-order
	// and out-of-order together; the advertised window never exceeds it.
	// SendBufferSize bounds the bytes queued by Write, unacknowledged ones
	// included. Defaults 256 KiB each.
	RecvBufferSize, SendBufferSize int

	// DelayedACK is how long an ACK for in-order data may be held back
	// (RFC 9293 §3.8.6.3: less than 0.5 s; Linux uses at most 200 ms).
	// 0 means acknowledge every segment at once. Default 40 ms.
	DelayedACK time.Duration

	// TimeWait is how long TIME-WAIT lasts (2*MSL, RFC 9293 §3.4.2).
	// Default 2 s: a CLI does not reuse its 4-tuple right away.
	TimeWait time.Duration

	// TimeWaitProbe ends TIME-WAIT before TimeWait when the peer can no
	// longer retransmit its FIN. On entering TIME-WAIT, after the ACK of
	// the peer's FIN, one probe <SEQ=SND.NXT-1><ACK=RCV.NXT><CTL=ACK>
	// goes out: a peer that got our ACK has no connection any more and
	// answers with a reset (RFC 9293 §3.10.7.1), which ends TIME-WAIT at
	// once; a peer still in LAST-ACK (our ACK was lost) answers with an
	// ACK (§3.10.7.4 first), and our ACK is sent again. Without that
	// reset TIME-WAIT lasts as long as a retransmitted FIN can still be
	// expected: twice the peer's first retransmission timeout (MinRTO,
	// Linux's floor, plus SRTT), restarted by each retransmitted FIN,
	// and never longer than TimeWait. Only with timestamps (RFC 6191: a
	// new incarnation of the 4-tuple then tells old duplicates apart by
	// PAWS); without them TIME-WAIT lasts TimeWait.
	TimeWaitProbe bool

	// InitialRTO, MinRTO and MaxRTO bound the retransmission timeout (RFC
	// 6298 §2: initial 1 s; Linux uses a 200 ms minimum; 120 s maximum).
	InitialRTO, MinRTO, MaxRTO time.Duration

	// MaxRetries is how many times the same segment is retransmitted before
	// the connection is given up with ErrTimeout (Linux tcp_retries2 = 15).
	// MaxSYNRetries is the same for a SYN or SYN-ACK (tcp_syn_retries = 6).
	MaxRetries, MaxSYNRetries int

	// Keepalive is the idle time before a keep-alive probe (RFC 9293
	// §3.8.4); 0 = off. KeepaliveInterval spaces the probes (default 75 s)
	// and KeepaliveProbes unanswered probes end the connection (default 9).
	Keepalive         time.Duration
	KeepaliveInterval time.Duration
	KeepaliveProbes   int

	// Congestion names the congestion control algorithm: "cubic" (RFC
	// 9438, the default, as in Linux) or "reno" (NewReno, RFC 5681 and
	// RFC 6582). "" means the default.
	Congestion string

	// ChallengeACKLimit caps the challenge ACKs of RFC 5961 §7 sent per
	// second; 0 = no limit. Default 1000 (Linux tcp_challenge_ack_limit).
	ChallengeACKLimit int

	// ReuseOutput lets the machine lend its own memory to the segments it
	// returns: their payload, option and SACK-block slices are valid only
	// until the next call into the Conn after Output or AppendOutput (a
	// payload may point straight into the send buffer, and the scratch of
	// one batch of segments is reused by the next; segments not drained
	// yet stay valid). A lent payload's capacity may reach further into
	// the machine's buffer: never append to it. A driver that sends every segment before it
	// calls again (stack does) saves a copy of each payload and the
	// allocations. false (the default) gives segments that own their
	// memory for as long as the caller keeps them, which simulations that
	// queue segments need.
	ReuseOutput bool
}

// DefaultConfig returns the defaults described on each Config field, with
// the ports left zero.
func DefaultConfig() Config {
	return Config{
		MSS:               1460,
		WindowScale:       7,
		SACK:              true,
		Timestamps:        true,
		RecvBufferSize:    256 << 10,
		SendBufferSize:    256 << 10,
		DelayedACK:        40 * time.Millisecond,
		TimeWait:          2 * time.Second,
		InitialRTO:        time.Second,
		MinRTO:            200 * time.Millisecond,
		MaxRTO:            120 * time.Second,
		MaxRetries:        15,
		MaxSYNRetries:     6,
		KeepaliveInterval: 75 * time.Second,
		KeepaliveProbes:   9,
		ChallengeACKLimit: 1000,
		Congestion:        CongestionCubic,
	}
}

// maxRecvBuffer is the largest window expressible with the largest scale
// (RFC 7323 §2.3: shift 14, 2^30 bytes).
const maxRecvBuffer = 1 << 30

// withDefaults fills the zero fields that have a default and validates the
// rest.
func (cfg Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if cfg.LocalPort == 0 {
		return cfg, errors.New("fsm: config: local port must not be 0")
	}
	if cfg.RemotePort == 0 {
		return cfg, errors.New("fsm: config: remote port must not be 0")
	}
	if cfg.MSS == 0 {
		cfg.MSS = d.MSS
	}
	if cfg.MSS < 64 || cfg.MSS > 65495 {
		return cfg, fmt.Errorf("fsm: config: MSS %d out of range 64..65495", cfg.MSS)
	}
	if cfg.MSS6 == 0 {
		cfg.MSS6 = max(cfg.MSS-20, 64)
	}
	if cfg.MSS6 < 64 || cfg.MSS6 > 65475 {
		// 65475: the largest IPv6 payload (65535) less the TCP header.
		return cfg, fmt.Errorf("fsm: config: IPv6 MSS %d out of range 64..65475", cfg.MSS6)
	}
	if cfg.IPv6 {
		// From here on the machine reads only MSS: the one of its
		// family. (MSS6 stays, so filling the defaults again changes
		// nothing.)
		cfg.MSS = cfg.MSS6
	}
	if cfg.WindowScale < -1 || cfg.WindowScale > 14 {
		return cfg, fmt.Errorf("fsm: config: window scale %d out of range -1..14 (RFC 7323 §2.3)", cfg.WindowScale)
	}
	if cfg.RecvBufferSize == 0 {
		cfg.RecvBufferSize = d.RecvBufferSize
	}
	if cfg.SendBufferSize == 0 {
		cfg.SendBufferSize = d.SendBufferSize
	}
	if cfg.RecvBufferSize < 0 || cfg.RecvBufferSize > maxRecvBuffer {
		return cfg, fmt.Errorf("fsm: config: receive buffer %d out of range 1..%d", cfg.RecvBufferSize, maxRecvBuffer)
	}
	if cfg.SendBufferSize < 0 || cfg.SendBufferSize > maxRecvBuffer {
		return cfg, fmt.Errorf("fsm: config: send buffer %d out of range 1..%d", cfg.SendBufferSize, maxRecvBuffer)
	}
	if cfg.WindowScale > 0 && cfg.RecvBufferSize < 4<<cfg.WindowScale {
		// The window is offered in units of 2^shift; a buffer of a few
		// units could not be used (and one unit is held back, see
		// freeSpace).
		return cfg, fmt.Errorf("fsm: config: receive buffer %d too small for window scale %d (need at least %d)",
			cfg.RecvBufferSize, cfg.WindowScale, 4<<cfg.WindowScale)
	}
	if cfg.DelayedACK < 0 || cfg.DelayedACK >= 500*time.Millisecond {
		return cfg, fmt.Errorf("fsm: config: delayed ACK %v must be in [0, 500ms) (RFC 9293 §3.8.6.3)", cfg.DelayedACK)
	}
	if cfg.TimeWait == 0 {
		cfg.TimeWait = d.TimeWait
	}
	if cfg.InitialRTO == 0 {
		cfg.InitialRTO = d.InitialRTO
	}
	if cfg.MinRTO == 0 {
		cfg.MinRTO = d.MinRTO
	}
	if cfg.MaxRTO == 0 {
		cfg.MaxRTO = d.MaxRTO
	}
	if cfg.TimeWait < 0 || cfg.InitialRTO < 0 || cfg.MinRTO < 0 || cfg.MaxRTO < 0 {
		return cfg, errors.New("fsm: config: durations must not be negative")
	}
	if cfg.MinRTO > cfg.MaxRTO {
		return cfg, fmt.Errorf("fsm: config: min RTO %v above max RTO %v", cfg.MinRTO, cfg.MaxRTO)
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = d.MaxRetries
	}
	if cfg.MaxSYNRetries == 0 {
		cfg.MaxSYNRetries = d.MaxSYNRetries
	}
	if cfg.MaxRetries < 0 || cfg.MaxSYNRetries < 0 {
		return cfg, errors.New("fsm: config: retry limits must not be negative")
	}
	if cfg.Keepalive < 0 || cfg.KeepaliveInterval < 0 || cfg.KeepaliveProbes < 0 {
		return cfg, errors.New("fsm: config: keep-alive settings must not be negative")
	}
	if cfg.KeepaliveInterval == 0 {
		cfg.KeepaliveInterval = d.KeepaliveInterval
	}
	if cfg.KeepaliveProbes == 0 {
		cfg.KeepaliveProbes = d.KeepaliveProbes
	}
	if cfg.Congestion == "" {
		cfg.Congestion = d.Congestion
	}
	if _, err := newCongestionControl(cfg.Congestion, int(cfg.MSS)); err != nil {
		return cfg, fmt.Errorf("fsm: config: %w", err)
	}
	if cfg.ChallengeACKLimit < 0 {
		return cfg, errors.New("fsm: config: challenge ACK limit must not be negative")
	}
	return cfg, nil
}

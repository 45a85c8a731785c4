package fsm

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/netip"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
)

// SYN cookies (RFC 4987 §3.6), computed as Linux computes them
// (net/ipv4/syncookies.c): when a Listener has no room for another
// half-open connection it answers the SYN with a SYN-ACK whose ISS encodes
// what it would have kept, and keeps nothing. The ACK that completes the
// handshake carries the cookie back (SEG.ACK-1); if it checks out, the
// connection is made then, from the ACK alone.
//
// The ISS is, as in Linux's secure_tcp_syn_cookie,
//
//	H1(addrs, ports) + peer ISN + count<<24 + (H2(addrs, ports, count) + mss index) mod 2^24
//
// where H1 and H2 are a keyed hash (HMAC-SHA256 with a secret of the
// Listener: Linux uses SipHash, which the standard library lacks; in a
// flooded listener's CPU profile the hashing is about 4%) and count is a
// minute counter: a cookie is good while count is at most one minute behind
// (Linux's MAX_SYNCOOKIE_AGE), so it expires after 60 to 120 s. The low 24
// bits leave only the index of the peer's MSS in a table of four (Linux's
// msstab for IPv4), so the MSS is rounded down to one of those.
//
// What else the SYN asked for goes into our timestamp when the peer
// offered timestamps (Linux's cookie_init_timestamp): its low 6 bits are
// the peer's window scale (15 = none) and SACK-permitted and ECN flags,
// the rest our timestamp clock rounded down; the peer echoes it in TSecr.
// Without timestamps the connection gets neither window scaling nor SACK,
// as in Linux. tcpcraft never agrees to ECN (RFC 3168), so the ECN bit is
// always clear; it is decoded to keep Linux's layout.

// SYNCookies says when a Listener answers a SYN with a SYN cookie: the
// choices of Linux's net.ipv4.tcp_syncookies.
type SYNCookies uint8

const (
	// SYNCookiesAuto: when the SYN queue is full (tcp_syncookies = 1,
	// Linux's default). The zero value.
	SYNCookiesAuto SYNCookies = iota
	// SYNCookiesNever: a SYN the full queue has no room for is dropped
	// (tcp_syncookies = 0).
	SYNCookiesNever
	// SYNCookiesAlways: every SYN (tcp_syncookies = 2): no half-open
	// connection is ever kept.
	SYNCookiesAlways
)

var synCookiesNames = [...]string{SYNCookiesAuto: "auto", SYNCookiesNever: "never", SYNCookiesAlways: "always"}

// String is the mode's name: "auto", "never" or "always".
func (m SYNCookies) String() string {
	if int(m) < len(synCookiesNames) {
		return synCookiesNames[m]
	}
	return "SYNCookies(" + itoa(int(m)) + ")"
}

// ParseSYNCookies reads a mode's name.
func ParseSYNCookies(s string) (SYNCookies, error) {
	for m, name := range synCookiesNames {
		if s == name {
			return SYNCookies(m), nil
		}
	}
	return 0, fmt.Errorf("fsm: SYN cookies %q: want auto, never or always", s)
}

const (
	cookieBits   = 24                          // the low bits: hash + MSS index; the count above
	cookieMask   = 1<<cookieBits - 1           //
	cookiePeriod = 60 * time.Second            // the count ticks once a minute (TCP_SYNCOOKIE_PERIOD)
	cookieMaxAge = 2                           // counts a cookie stays good (MAX_SYNCOOKIE_AGE)
	cookieValid  = cookieMaxAge * cookiePeriod // how long after the last cookie sent ACKs are checked (TCP_SYNCOOKIE_VALID)

	tsOptBits      = 6    // low bits of the timestamp that carry options (TSBITS)
	tsOptWScale    = 0x0f // window scale shift; tsNoWScale: none
	tsNoWScale     = 0x0f //
	tsOptSACK      = 1 << 4
	tsOptECN       = 1 << 5
	cookieSecretSz = 32
)

// cookieMSS4 and cookieMSS6 are the tables of MSS values a cookie can
// name, per family (Linux's msstab of net/ipv4/syncookies.c and of
// net/ipv6/syncookies.c): the largest one not above the peer's MSS is
// used. The first entry of each is its family's default send MSS (RFC
// 9293 §3.7.1): 536, and 1220 for IPv6, whose links carry at least 1280
// bytes (RFC 8200 §5); the IPv6 ones are the common MTUs less 60.
var (
	cookieMSS4 = [4]uint16{536, 1300, 1440, 1460}
	cookieMSS6 = [4]uint16{1280 - 60, 1480 - 60, 1500 - 60, 9000 - 60}
)

// cookieMSSTable is the table of t's family.
func cookieMSSTable(t cookieTuple) *[4]uint16 {
	if t.src.Is6() {
		return &cookieMSS6
	}
	return &cookieMSS4
}

// cookieMSSIndex is the index of the largest entry of table not above mss
// (0 when mss is below them all, as Linux: the family's default).
func cookieMSSIndex(table *[4]uint16, mss uint16) uint32 {
	for i := len(table) - 1; i > 0; i-- {
		if mss >= table[i] {
			return uint32(i)
		}
	}
	return 0
}

// cookieOpts are the options of a SYN that ride in the timestamp.
type cookieOpts struct {
	wscale    int // the peer's shift, or -1: no window scaling
	sack, ecn bool
}

// bits encodes o in the low tsOptBits of a timestamp.
func (o cookieOpts) bits() uint32 {
	b := uint32(tsNoWScale)
	if o.wscale >= 0 {
		b = uint32(min(o.wscale, 14))
	}
	if o.sack {
		b |= tsOptSACK
	}
	if o.ecn {
		b |= tsOptECN
	}
	return b
}

// cookieOptsOf decodes the options from an echoed timestamp.
func cookieOptsOf(tsecr uint32) cookieOpts {
	o := cookieOpts{wscale: -1, sack: tsecr&tsOptSACK != 0, ecn: tsecr&tsOptECN != 0}
	if w := tsecr & tsOptWScale; w != tsNoWScale {
		o.wscale = int(w)
	}
	return o
}

// cookieTS is our timestamp for a cookie's SYN-ACK: the clock with its low
// bits replaced by the options, never ahead of the clock (so the next
// timestamp of the connection is not older than it, RFC 7323 §5.3).
func cookieTS(clock uint32, o cookieOpts) uint32 {
	ts := clock&^(1<<tsOptBits-1) | o.bits()
	if int32(ts-clock) > 0 {
		ts -= 1 << tsOptBits
	}
	return ts
}

// cookieJar makes and checks the cookies of one Listener. Its clock starts
// at the first time it sees (fsm reads no clock).
type cookieJar struct {
	mac     hash.Hash // HMAC-SHA256 keyed with the Listener's secret
	in      [41]byte  // the hash input: addresses, ports, count, which hash
	sum     [sha256.Size]byte
	epoch   time.Time // the start of the count and of the timestamp clock
	started bool
	// lastSent is when the last cookie went out; ACKs are checked for
	// cookies only within cookieValid of it (Linux's
	// tcp_synq_no_recent_overflow), so that nobody can open a
	// connection by guessing a cookie while none is in use.
	lastSent time.Time
	sentAny  bool
}

func newCookieJar(rnd io.Reader) (*cookieJar, error) {
	var secret [cookieSecretSz]byte
	if _, err := io.ReadFull(rnd, secret[:]); err != nil {
		return nil, fmt.Errorf("fsm: drawing the SYN cookie secret: %w", err)
	}
	return &cookieJar{mac: hmac.New(sha256.New, secret[:])}, nil
}

func (j *cookieJar) start(now time.Time) {
	if !j.started {
		j.epoch, j.started = now, true
	}
}

// count is the minute counter at now.
func (j *cookieJar) count(now time.Time) uint32 {
	d := now.Sub(j.epoch)
	if d < 0 {
		d = 0
	}
	return uint32(d / cookiePeriod)
}

// clock is our timestamp clock for cookie connections at now: a keyed
// offset per 4-tuple (RFC 7323 §7.1, as Linux's secure_tcp_ts_off) plus
// milliseconds (RFC 7323 §5.4). The connection a cookie makes keeps it.
func (j *cookieJar) clock(t cookieTuple, now time.Time) uint32 {
	d := now.Sub(j.epoch)
	if d < 0 {
		d = 0
	}
	h := j.hash(t, 0, 2)
	return binary.BigEndian.Uint32(h[:4]) + uint32(d/time.Millisecond)
}

// cookieTuple is what a cookie is bound to: both ends of the connection.
type cookieTuple struct {
	src, dst         netip.Addr
	srcPort, dstPort uint16
}

// hash is the keyed hash of t, count and which (0: H1, 1: H2, 2: the
// timestamp offset): the first four bytes of its sum.
func (j *cookieJar) hash(t cookieTuple, count uint32, which byte) [4]byte {
	s, d := t.src.As16(), t.dst.As16()
	copy(j.in[0:16], s[:])
	copy(j.in[16:32], d[:])
	binary.BigEndian.PutUint16(j.in[32:], t.srcPort)
	binary.BigEndian.PutUint16(j.in[34:], t.dstPort)
	binary.BigEndian.PutUint32(j.in[36:], count)
	j.in[40] = which
	j.mac.Reset()
	j.mac.Write(j.in[:])
	sum := j.mac.Sum(j.sum[:0])
	return [4]byte(sum[:4])
}

func (j *cookieJar) h(t cookieTuple, count uint32, which byte) uint32 {
	b := j.hash(t, count, which)
	return binary.BigEndian.Uint32(b[:])
}

// make returns the ISS that encodes mssIndex for a SYN of t with ISN
// peerISN, at now.
func (j *cookieJar) make(t cookieTuple, peerISN craft.Seq, mssIndex uint32, now time.Time) craft.Seq {
	count := j.count(now)
	j.lastSent, j.sentAny = now, true
	v := j.h(t, 0, 0) + uint32(peerISN) + count<<cookieBits + (j.h(t, count, 1)+mssIndex)&cookieMask
	return craft.Seq(v)
}

// errCookie is why an ACK's cookie was refused (for tests; the Listener
// reports a Cause).
var (
	errCookieAge  = errors.New("cookie expired")
	errCookieData = errors.New("cookie does not check out")
)

// check undoes make for the cookie iss of t and the peer's ISN, at now: the
// MSS index, or an error when the cookie is too old or forged.
func (j *cookieJar) check(t cookieTuple, iss, peerISN craft.Seq, now time.Time) (uint32, error) {
	count := j.count(now)
	v := uint32(iss) - (j.h(t, 0, 0) + uint32(peerISN))
	made := v >> cookieBits
	diff := (count - made) & (1<<(32-cookieBits) - 1)
	if diff >= cookieMaxAge {
		return 0, errCookieAge
	}
	idx := (v - j.h(t, count-diff, 1)) & cookieMask
	if idx >= uint32(len(cookieMSS4)) {
		return 0, errCookieData
	}
	return idx, nil
}

// recent reports whether a cookie went out recently enough for an ACK to
// carry one back.
func (j *cookieJar) recent(now time.Time) bool {
	return j.sentAny && now.Sub(j.lastSent) < cookieValid
}

package fault

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The language of faults, one per --fault:
//
//	KIND[:NAME=VALUE[,NAME=VALUE]...]
//
//	drop:seg=N            drop our Nth data segment (its first sending)
//	drop:every=N          drop every Nth of our data segments
//	drop:p=P[,seed=S]     drop each of our data segments (retransmissions
//	                      too) with probability P, from a generator seeded S
//	                      (default 1: the same drops every run)
//	delay-ack:d=DURATION  hold each of our pure ACKs that long
//	drop-ack              send none of our pure ACKs
//	reorder:seg=N         send our Nth data segment after the next one
//	dup:seg=N             send our Nth data segment twice
//	zero-window:for=DURATION
//	                      advertise a zero window for that long, then send
//	                      a window update with the true window
//	mss:value=N           advertise MSS N in our SYN (any value, 1-65535)
//	rst:after=BYTES       reset the connection (Abort) after BYTES
//	fin:after=BYTES       send our FIN (CloseWrite) after BYTES
//	dead                  stop answering: nothing out, nothing heard
//	corrupt:seg=N         send our Nth data segment with a wrong checksum
//
// after=BYTES (drop with every or p, delay-ack, drop-ack, zero-window, dead)
// starts the fault once that many data bytes have crossed the connection,
// both directions counted; after=fin (the same kinds, and rst) starts it
// when the peer's FIN arrives, whatever the timing of the data before it
// (a test of how a peer's retransmitted FIN is handled needs our ACK of the
// first one withheld, however late that FIN comes); for=DURATION (delay-ack, drop-ack, dead) ends it
// after that long. Data segments are counted from 1, by their first
// sending. BYTES is a whole number, with k (1024), m or g after it; a
// DURATION is a number of seconds or has a unit (200ms, 2s).

// Kind names a fault.
type Kind int

// The faults.
const (
	Drop Kind = iota + 1
	DelayACK
	DropACK
	Reorder
	Dup
	ZeroWindow
	MSS
	Reset
	Fin
	Dead
	Corrupt
)

var kindNames = []struct {
	kind Kind
	name string
}{{Drop, "drop"}, {DelayACK, "delay-ack"}, {DropACK, "drop-ack"}, {Reorder, "reorder"}, {Dup, "dup"},
	{ZeroWindow, "zero-window"}, {MSS, "mss"}, {Reset, "rst"}, {Fin, "fin"}, {Dead, "dead"}, {Corrupt, "corrupt"}}

func (k Kind) String() string {
	for _, n := range kindNames {
		if n.kind == k {
			return n.name
		}
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Kinds returns the names of the faults, in the order of the table above.
func Kinds() []string {
	out := make([]string, len(kindNames))
	for i, n := range kindNames {
		out[i] = n.name
	}
	return out
}

// rules says which parameters a kind takes: allowed ones, and groups of
// which exactly one must be given.
type rules struct {
	allowed []string
	oneOf   []string
}

var kindRules = map[Kind]rules{
	Drop:       {allowed: []string{"seg", "every", "p", "seed", "after"}, oneOf: []string{"seg", "every", "p"}},
	DelayACK:   {allowed: []string{"d", "after", "for"}, oneOf: []string{"d"}},
	DropACK:    {allowed: []string{"after", "for"}},
	Reorder:    {allowed: []string{"seg"}, oneOf: []string{"seg"}},
	Dup:        {allowed: []string{"seg"}, oneOf: []string{"seg"}},
	ZeroWindow: {allowed: []string{"after", "for"}, oneOf: []string{"for"}},
	MSS:        {allowed: []string{"value"}, oneOf: []string{"value"}},
	Reset:      {allowed: []string{"after"}, oneOf: []string{"after"}},
	Fin:        {allowed: []string{"after"}, oneOf: []string{"after"}},
	Dead:       {allowed: []string{"after", "for"}},
	Corrupt:    {allowed: []string{"seg"}, oneOf: []string{"seg"}},
}

// Spec is one parsed fault.
type Spec struct {
	Kind Kind
	// Seg is the data segment (from 1) that drop, reorder, dup and corrupt
	// act on; Every makes drop act on every Every-th; P is drop's
	// probability and Seed its generator's seed.
	Seg, Every int
	P          float64
	Seed       uint64
	// After is how many data bytes (both directions) must have crossed
	// before the fault acts; For how long it lasts once it does (0: for
	// ever, or until it has acted); D how long delay-ack holds an ACK.
	After int64
	// AfterFIN (after=fin) starts the fault when the peer's FIN arrives.
	AfterFIN bool
	For      time.Duration
	D        time.Duration
	// Value is the MSS that mss advertises.
	Value int
	// set lists the parameters given, for String.
	set map[string]bool
}

// SyntaxError is a fault that does not follow the language.
type SyntaxError struct {
	Spec string // as written
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("fault %q: %s", e.Spec, e.Msg) }

// Parse reads one fault, e.g. "drop:seg=3" or "zero-window:after=64k,for=2s".
func Parse(text string) (Spec, error) {
	fail := func(format string, args ...any) (Spec, error) {
		return Spec{}, &SyntaxError{Spec: text, Msg: fmt.Sprintf(format, args...)}
	}
	name, params, hasParams := strings.Cut(strings.TrimSpace(text), ":")
	var s Spec
	for _, n := range kindNames {
		if n.name == name {
			s.Kind = n.kind
		}
	}
	if s.Kind == 0 {
		return fail("unknown fault %q (known: %s)", name, strings.Join(Kinds(), ", "))
	}
	r := kindRules[s.Kind]
	s.set = map[string]bool{}
	if hasParams && params == "" {
		return fail("nothing after the colon: want NAME=VALUE")
	}
	if hasParams {
		for _, kv := range strings.Split(params, ",") {
			k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if !ok || k == "" || v == "" {
				return fail("%q: want NAME=VALUE", kv)
			}
			if !contains(r.allowed, k) {
				if len(r.allowed) == 0 {
					return fail("%s takes no parameters", s.Kind)
				}
				return fail("%s takes %s, not %q", s.Kind, strings.Join(r.allowed, ", "), k)
			}
			if s.set[k] {
				return fail("%s given twice", k)
			}
			s.set[k] = true
			if err := s.setParam(k, v); err != nil {
				return fail("%s=%s: %v", k, v, err)
			}
		}
	}
	if len(r.oneOf) > 0 {
		var given []string
		for _, k := range r.oneOf {
			if s.set[k] {
				given = append(given, k)
			}
		}
		switch {
		case len(given) == 0 && len(r.oneOf) == 1:
			return fail("%s needs %s=", s.Kind, r.oneOf[0])
		case len(given) == 0:
			return fail("%s needs one of %s", s.Kind, strings.Join(r.oneOf, ", "))
		case len(given) > 1:
			return fail("%s takes one of %s, not %s together", s.Kind, strings.Join(r.oneOf, ", "), strings.Join(given, " and "))
		}
	}
	if s.Kind == Drop {
		switch {
		case s.set["seed"] && !s.set["p"]:
			return fail("seed goes with p")
		case s.set["after"] && s.set["seg"]:
			return fail("after goes with every or p (seg counts from the start)")
		}
		if s.set["p"] && !s.set["seed"] {
			s.Seed = 1
		}
	}
	return s, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (s *Spec) setParam(k, v string) error {
	var err error
	switch k {
	case "seg":
		s.Seg, err = count(v)
	case "every":
		s.Every, err = count(v)
	case "p":
		s.P, err = strconv.ParseFloat(v, 64)
		if err != nil || math.IsNaN(s.P) || s.P <= 0 || s.P > 1 {
			return fmt.Errorf("want a probability above 0, at most 1")
		}
	case "seed":
		s.Seed, err = strconv.ParseUint(v, 0, 64)
		if err != nil {
			return fmt.Errorf("want a whole number")
		}
	case "after":
		if strings.EqualFold(v, "fin") {
			if s.Kind == Fin {
				return fmt.Errorf("fin closes our side after a byte count, not after the peer's FIN")
			}
			s.AfterFIN = true
			return nil
		}
		s.After, err = parseBytes(v)
	case "for":
		s.For, err = parseDuration(v)
		if err == nil && s.For == 0 {
			err = fmt.Errorf("want a duration above 0")
		}
	case "d":
		s.D, err = parseDuration(v)
		if err == nil && s.D == 0 {
			err = fmt.Errorf("want a duration above 0")
		}
	case "value":
		s.Value, err = count(v)
		if err == nil && s.Value > 65535 {
			err = fmt.Errorf("an MSS is 1 to 65535")
		}
	}
	return err
}

// count reads a whole number of at least 1.
func count(v string) (int, error) {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("want a whole number of at least 1")
	}
	return int(n), nil
}

// parseBytes reads a byte count: a whole number, with k, m or g (powers of
// 1024) after it.
func parseBytes(v string) (int64, error) {
	mult := int64(1)
	switch strings.ToLower(v[len(v)-1:]) {
	case "k":
		mult = 1 << 10
	case "m":
		mult = 1 << 20
	case "g":
		mult = 1 << 30
	}
	if mult > 1 {
		v = v[:len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("want a byte count: a whole number, with k, m or g after it")
	}
	return n * mult, nil
}

// parseDuration reads seconds ("0.5") or a Go duration ("200ms").
func parseDuration(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f < 0 || math.IsNaN(f) || f > float64(math.MaxInt64)/float64(time.Second) {
			return 0, fmt.Errorf("want a duration of at least 0")
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("want a duration: seconds, or a number with a unit (200ms, 2s)")
	}
	return d, nil
}

// String writes the fault in the language, its parameters in a fixed
// order; Parse(s.String()) gives s back.
func (s Spec) String() string {
	var parts []string
	add := func(k, v string) {
		if s.set[k] {
			parts = append(parts, k+"="+v)
		}
	}
	add("seg", strconv.Itoa(s.Seg))
	add("every", strconv.Itoa(s.Every))
	add("p", strconv.FormatFloat(s.P, 'g', -1, 64))
	add("seed", strconv.FormatUint(s.Seed, 10))
	add("d", s.D.String())
	add("value", strconv.Itoa(s.Value))
	if s.AfterFIN {
		add("after", "fin")
	} else {
		add("after", formatBytes(s.After))
	}
	add("for", s.For.String())
	if len(parts) == 0 {
		return s.Kind.String()
	}
	return s.Kind.String() + ":" + strings.Join(parts, ",")
}

func formatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// Params lists the parameters given, sorted (for tests and messages).
func (s Spec) Params() []string {
	var out []string
	for k := range s.set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

package fsm

// State is one of the connection states of RFC 9293 §3.3.2.
type State int

// The eleven states of RFC 9293 §3.3.2, Figure 5.
const (
	Closed State = iota
	Listen
	SynSent
	SynReceived
	Established
	FinWait1
	FinWait2
	CloseWait
	Closing
	LastAck
	TimeWait
)

// String returns the RFC 9293 name of the state, e.g. "SYN-SENT".
func (s State) String() string {
	switch s {
	case Closed:
		return "CLOSED"
	case Listen:
		return "LISTEN"
	case SynSent:
		return "SYN-SENT"
	case SynReceived:
		return "SYN-RECEIVED"
	case Established:
		return "ESTABLISHED"
	case FinWait1:
		return "FIN-WAIT-1"
	case FinWait2:
		return "FIN-WAIT-2"
	case CloseWait:
		return "CLOSE-WAIT"
	case Closing:
		return "CLOSING"
	case LastAck:
		return "LAST-ACK"
	case TimeWait:
		return "TIME-WAIT"
	}
	return "State(" + itoa(int(s)) + ")"
}

// synchronized reports whether the state is one of the synchronized states
// of RFC 9293 §3.5.2 (both ISNs known), for which the rules of §3.10.7.4
// apply. SYN-RECEIVED is handled by §3.10.7.4 too.
func (s State) synchronized() bool {
	return s >= SynReceived
}

// itoa formats a small integer without pulling in strconv on hot paths.
func itoa(v int) string {
	if v == 0 {
		return "0"
	}
	neg := v < 0
	if neg {
		v = -v
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

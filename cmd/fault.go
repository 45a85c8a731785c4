package cmd

// --fault of connect and listen: the flag, its parsing, and carrying out
// the faults that act on a connection itself (the engine is package fault).

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fault"
	"github.com/tcpcraft/tcpcraft/fsm"
	"github.com/tcpcraft/tcpcraft/stack"
)

// faultHelp is the part of connect's and listen's descriptions about
// --fault.
const faultHelp = `Faults (--fault SPEC, repeatable; each connection counts anew): tcpcraft
misbehaves on purpose at an exact point of the connection, and the trace
shows each fault as it acts ("! fault ..."); --pcap records what went on
the wire. SPEC is KIND[:NAME=VALUE,...]:
  drop:seg=N | drop:every=N | drop:p=P[,seed=S]
                       drop our Nth data segment, every Nth, or each with
                       probability P (seeded: the same drops every run)
  delay-ack:d=DURATION hold each of our pure ACKs that long
  drop-ack             send none of our pure ACKs
  reorder:seg=N        send our Nth data segment after the next one
  dup:seg=N            send our Nth data segment twice
  zero-window:for=DURATION
                       advertise a zero window, then a window update
  mss:value=N          advertise MSS N in our SYN (any value)
  rst:after=BYTES      reset the connection after BYTES
  fin:after=BYTES      close our side (FIN) after BYTES
  dead                 stop answering: nothing out, nothing heard
  corrupt:seg=N        send our Nth data segment with a wrong checksum
after=BYTES (drop with every or p, delay-ack, drop-ack, zero-window, dead)
waits until that many data bytes have crossed, both ways counted;
after=fin (the same, and rst) waits for the peer's FIN;
for=DURATION (delay-ack, drop-ack, dead) ends the fault after that long.
BYTES takes k, m, g (1024s). Data segments count from 1, first sendings
only. A fault makes every segment go out one by one (no segmentation
offload); on exit held segments go and the faults stop, so the peer is
reset, not left half-open.`

func faultFlag() cli.Flag {
	return &cli.StringSliceFlag{Name: "fault", Usage: "misbehave on purpose: `SPEC`, repeatable, e.g. drop:seg=3, zero-window:after=64k,for=2s, rst:after=10k (see Faults above)"}
}

// faultSpecs parses --fault.
func faultSpecs(c *cli.Command) ([]fault.Spec, error) {
	var specs []fault.Spec
	for _, s := range flagStringSlice(c, "fault") {
		spec, err := fault.Parse(s)
		if err != nil {
			return nil, usagef("--fault: %v", err)
		}
		specs = append(specs, spec)
	}
	return specs, nil
}

// faultActs carries out the faults that act on a connection (rst, fin):
// the application's connections register here as they open; a trigger for
// one not yet registered (rst:after=0 fires on the SYN) waits for it.
type faultActs struct {
	trace   *tracer
	mu      sync.Mutex
	conns   map[craft.FourTuple]*stack.Conn
	pending map[craft.FourTuple]fault.Trigger
	aborted map[*stack.Conn]string // the connections rst reset, and which fault
}

func newFaultActs(t *tracer) *faultActs {
	return &faultActs{trace: t, conns: map[craft.FourTuple]*stack.Conn{}, pending: map[craft.FourTuple]fault.Trigger{},
		aborted: map[*stack.Conn]string{}}
}

// register makes conn reachable to triggers, and carries out one that
// came first.
func (a *faultActs) register(conn *stack.Conn) {
	if a == nil {
		return
	}
	t := craft.FourTuple{Src: conn.LocalAddr(), Dst: conn.RemoteAddr()}
	a.mu.Lock()
	a.conns[t] = conn
	tr, ok := a.pending[t]
	delete(a.pending, t)
	a.mu.Unlock()
	if ok {
		a.act(tr)
	}
	go func() {
		<-conn.Done()
		a.mu.Lock()
		delete(a.conns, t)
		a.mu.Unlock()
	}()
}

// act is fault.LinkConfig.Act.
func (a *faultActs) act(tr fault.Trigger) {
	a.mu.Lock()
	conn := a.conns[tr.Tuple]
	if conn == nil {
		a.pending[tr.Tuple] = tr
		a.mu.Unlock()
		return
	}
	a.mu.Unlock()
	if tr.Abort {
		a.mu.Lock()
		a.aborted[conn] = tr.Fault
		a.mu.Unlock()
		conn.Abort()
		return
	}
	// The application may be handing the connection data (connect's
	// input is read straight into the send buffer): close once it has.
	var err error
	for range 1000 {
		if err = conn.CloseWrite(); !errors.Is(err, fsm.ErrLent) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	what := ""
	switch {
	case err == nil:
		return
	case errors.Is(err, fsm.ErrClosing):
		what = "our side was closing already"
	default:
		what = fmt.Sprintf("could not close: %v", err)
	}
	a.trace.faultNote(time.Now(), fault.Note{Tuple: tr.Tuple, Fault: tr.Fault, What: what})
}

// abortedBy returns the fault that reset conn, or "".
func (a *faultActs) abortedBy(conn *stack.Conn) string {
	if a == nil {
		return ""
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.aborted[conn]
}

// finLimit cuts the application's input after the bytes of the first
// fin:after=N fault: what it reads goes into the connection's send buffer
// at once, and a FIN goes out only after all that, so the input must end
// where the FIN is to come.
func finLimit(specs []fault.Spec, in io.Reader) io.Reader {
	n := int64(-1)
	for _, s := range specs {
		if s.Kind == fault.Fin && (n < 0 || s.After < n) {
			n = s.After
		}
	}
	if n < 0 || in == nil {
		return in
	}
	return io.LimitReader(in, n)
}

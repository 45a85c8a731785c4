package probe

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpcraft/tcpcraft/lab"
)

// Kernel is the kernel under test, as the runner reaches it: system calls
// and shell commands executed in its network namespace.
type Kernel interface {
	// Start starts a system call and returns at once; the call's replies
	// arrive on the returned Call.
	Start(req Request) *Call
	// Shell runs command with sh -c in the kernel's namespace, in
	// directory dir, and returns its combined output.
	Shell(ctx context.Context, dir, command string) ([]byte, error)
	// Close ends whatever the Kernel started (the helper process, open
	// sockets). It is safe to call more than once.
	Close() error
}

// Call is a system call in progress. Blocked receives the time the calling
// thread went to sleep in the kernel (only for Blocking requests, and only
// if it did); Done receives the final reply. Both are buffered, so nobody
// has to read them.
type Call struct {
	Blocked chan time.Time
	Done    chan Reply
}

func newCall() *Call {
	return &Call{Blocked: make(chan time.Time, 1), Done: make(chan Reply, 1)}
}

// shellIn runs `ip netns exec NS sh -c command` (or sh -c in the current
// namespace when ns is "").
func shellIn(ctx context.Context, ns, dir, command string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if ns == "" {
		cmd = exec.CommandContext(ctx, "sh", "-c", command)
	} else {
		cmd = exec.CommandContext(ctx, "ip", "netns", "exec", ns, "sh", "-c", command)
	}
	cmd.Dir = dir
	// Scripts written for packetdrill may name it (e.g. its
	// set_sysctls.py writes /tmp/sysctl_restore_$PACKETDRILL_PID.sh).
	cmd.Env = append(os.Environ(), fmt.Sprintf("PACKETDRILL_PID=%d", os.Getpid()))
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

// HelperKernel runs system calls in a helper process started inside the
// kernel's namespace. The helper is tcpcraft itself (argv is the command
// that starts it, e.g. [/proc/self/exe probe-syscalls]): it reads Requests
// as JSON lines on stdin and writes Replies as JSON lines on stdout (see
// ServeHelper). A process of its own keeps the kernel's file descriptors
// apart from tcpcraft's and can be killed with whatever it is blocked in.
type HelperKernel struct {
	ns    string
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu      sync.Mutex
	pending map[uint64]*Call
	nextID  uint64
	dead    error // set when the helper's output ended
	done    chan struct{}
	closed  bool
	stderr  *lockedBuffer
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf) < 64<<10 {
		b.buf = append(b.buf, p...)
	}
	return len(p), nil
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// StartHelper starts the helper argv inside network namespace ns (through
// `ip netns exec`; "" means the current namespace).
func StartHelper(ns string, argv []string) (*HelperKernel, error) {
	if len(argv) == 0 {
		return nil, errors.New("no helper command")
	}
	var cmd *exec.Cmd
	if ns == "" {
		cmd = exec.Command(argv[0], argv[1:]...)
	} else {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	}
	h := &HelperKernel{ns: ns, cmd: cmd, pending: map[uint64]*Call{}, done: make(chan struct{}), stderr: &lockedBuffer{}}
	cmd.Stderr = h.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the system call helper: %w", err)
	}
	h.stdin = stdin
	go h.readReplies(stdout)
	return h, nil
}

func (h *HelperKernel) readReplies(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), maxBuffer*2)
	for sc.Scan() {
		var rep Reply
		if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
			continue
		}
		h.mu.Lock()
		call := h.pending[rep.ID]
		if rep.Event == "done" {
			delete(h.pending, rep.ID)
		}
		h.mu.Unlock()
		if call == nil {
			continue
		}
		if rep.Event == "blocked" {
			select {
			case call.Blocked <- time.Unix(0, rep.Blocked):
			default:
			}
			continue
		}
		call.Done <- rep
	}
	err := sc.Err()
	if err == nil {
		err = errors.New("the system call helper exited")
	}
	if msg := h.stderr.String(); msg != "" {
		err = fmt.Errorf("%w: %s", err, msg)
	}
	h.mu.Lock()
	h.dead = err
	pending := h.pending
	h.pending = map[uint64]*Call{}
	h.mu.Unlock()
	for _, call := range pending {
		call.Done <- Reply{Event: "done", Ret: -1, Err: err.Error()}
	}
	close(h.done)
}

// Start sends req to the helper.
func (h *HelperKernel) Start(req Request) *Call {
	call := newCall()
	h.mu.Lock()
	if h.dead != nil || h.closed {
		err := h.dead
		h.mu.Unlock()
		if err == nil {
			err = errors.New("the system call helper was closed")
		}
		call.Done <- Reply{Event: "done", Ret: -1, Err: err.Error()}
		return call
	}
	h.nextID++
	req.ID = h.nextID
	h.pending[req.ID] = call
	line, err := json.Marshal(req)
	if err == nil {
		_, err = h.stdin.Write(append(line, '\n'))
	}
	if err != nil {
		delete(h.pending, req.ID)
	}
	h.mu.Unlock()
	if err != nil {
		call.Done <- Reply{ID: req.ID, Event: "done", Ret: -1, Err: fmt.Sprintf("sending to the system call helper: %v", err)}
	}
	return call
}

// Shell runs command in the helper's namespace.
func (h *HelperKernel) Shell(ctx context.Context, dir, command string) ([]byte, error) {
	return shellIn(ctx, h.ns, dir, command)
}

// Close ends the helper: its stdin is closed (it exits on end of input) and
// after a short grace period it is killed, blocked calls and all.
func (h *HelperKernel) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	h.stdin.Close()
	exited := make(chan error, 1)
	go func() { exited <- h.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(2 * time.Second):
		_ = h.cmd.Process.Kill()
		<-exited
	}
	return nil
}

// ServeHelper is the helper process's main loop: it reads Requests as JSON
// lines from r, executes each (a Blocking one in its own goroutine, so that
// it does not hold up the others) and writes Replies as JSON lines to w.
// It returns at the end of r; the caller then exits, and the kernel closes
// whatever the script left open.
func ServeHelper(r io.Reader, w io.Writer) error {
	var mu sync.Mutex
	send := func(rep Reply) {
		line, err := json.Marshal(rep)
		if err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		_, _ = w.Write(append(line, '\n'))
	}
	var inFlight sync.WaitGroup
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), maxBuffer*2)
	for sc.Scan() {
		var req Request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			send(Reply{Event: "done", Ret: -1, Err: fmt.Sprintf("bad request: %v", err)})
			continue
		}
		if !req.Blocking {
			// A call the script expects to return at once runs
			// here: a goroutine of its own would wait for another
			// thread to wake (on a busy machine, for a CPU) before
			// the call enters the kernel. The runner waits for its
			// reply before it sends another, and gives up on one
			// that does not return (nonBlockingLimit).
			send(Execute(req, nil))
			continue
		}
		inFlight.Add(1)
		go func(req Request) {
			defer inFlight.Done()
			rep := Execute(req, func(at time.Time) {
				send(Reply{ID: req.ID, Event: "blocked", Blocked: at.UnixNano()})
			})
			send(rep)
		}(req)
	}
	// Let calls in progress answer, but not for ever: one may be blocked
	// for good, and exiting closes its descriptor anyway.
	finished := make(chan struct{})
	go func() { inFlight.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(time.Second):
	}
	return sc.Err()
}

// InProcessKernel executes system calls in this process: sockets are
// created on a thread inside network namespace ns (lab.Do), every other
// call works on them from any thread. It is what tests use when no
// tcpcraft binary is at hand; tcpcraft itself uses the helper process.
type InProcessKernel struct {
	ns string

	mu     sync.Mutex
	fds    map[int]bool
	closed bool
}

// NewInProcessKernel returns a Kernel for namespace ns.
func NewInProcessKernel(ns string) *InProcessKernel {
	return &InProcessKernel{ns: ns, fds: map[int]bool{}}
}

// Start runs req in a goroutine.
func (k *InProcessKernel) Start(req Request) *Call {
	call := newCall()
	go func() {
		var rep Reply
		if req.Call == "socket" {
			err := lab.Do(k.ns, func() error {
				rep = Execute(req, nil)
				return nil
			})
			if err != nil {
				rep = Reply{ID: req.ID, Event: "done", Ret: -1, Err: err.Error()}
			}
		} else {
			rep = Execute(req, func(at time.Time) {
				select {
				case call.Blocked <- at:
				default:
				}
			})
		}
		k.track(req, rep)
		call.Done <- rep
	}()
	return call
}

func (k *InProcessKernel) track(req Request, rep Reply) {
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case (req.Call == "socket" || req.Call == "accept") && rep.Ret >= 0 && rep.Err == "":
		k.fds[int(rep.Ret)] = true
	case req.Call == "close" && rep.Ret == 0:
		delete(k.fds, req.FD)
	}
}

// Shell runs command in the namespace.
func (k *InProcessKernel) Shell(ctx context.Context, dir, command string) ([]byte, error) {
	return shellIn(ctx, k.ns, dir, command)
}

// Close shuts down and closes every descriptor the script left open, which
// also wakes calls still blocked on them.
func (k *InProcessKernel) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	for fd := range k.fds {
		_ = unix.Shutdown(fd, unix.SHUT_RDWR)
		_ = unix.Close(fd)
	}
	return nil
}

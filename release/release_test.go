package release

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// parentEnv makes the test binary act as the process that hands its
// sockets over (runParent) instead of running tests.
const parentEnv = "TCPCRAFT_RELEASE_TEST_PARENT"

func TestMain(m *testing.M) {
	if os.Getenv(parentEnv) == "1" {
		os.Exit(runParent())
	}
	os.Exit(m.Run())
}

// handedOff is how many AF_PACKET sockets the parent hands over, and
// plain how many it closes itself, one after another, as the reference.
const handedOff, plain = 5, 5

// runParent opens handedOff AF_PACKET sockets, hands them to a helper,
// closes its own descriptors of them, then plain sockets of its own, and
// prints: the helper's pid, the sockets' inodes, the closes' durations in
// µs (handed-off ones, then plain ones). Then it waits for its standard
// input to end and exits.
func runParent() int {
	fail := func(err error) int { fmt.Println("error", err); return 1 }
	var files []*os.File
	var conns []Conn
	var inodes []string
	for range handedOff {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fail(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return fail(err)
		}
		inodes = append(inodes, strconv.FormatUint(st.Ino, 10))
		f := os.NewFile(uintptr(fd), "packet")
		rc, err := f.SyscallConn()
		if err != nil {
			return fail(err)
		}
		files, conns = append(files, f), append(conns, rc)
	}
	pid, err := Later(conns...)
	if err != nil {
		return fail(err)
	}
	var times []string
	for _, f := range files {
		start := time.Now()
		f.Close()
		times = append(times, strconv.FormatInt(time.Since(start).Microseconds(), 10))
	}
	for range plain {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fail(err)
		}
		start := time.Now()
		unix.Close(fd)
		times = append(times, strconv.FormatInt(time.Since(start).Microseconds(), 10))
	}
	fmt.Println("helper", pid)
	fmt.Println("inodes", strings.Join(inodes, " "))
	fmt.Println("closes", strings.Join(times, " "))
	os.Stdout.Close()
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	return 0
}

// TestLaterHoldsUntilExit: the helper holds the handed-over sockets and
// nothing else of the parent's (its output pipe least of all), is named
// tcpcraft-linger, left the parent's session, and goes once the parent
// has exited; the parent's own closes of handed-off sockets do not wait
// for a grace period, while closing a socket of its own does.
func TestLaterHoldsUntilExit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (AF_PACKET sockets)")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), parentEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	// The parent closes its standard output before it waits: end-of-file
	// here means no one else (the helper) holds the pipe either.
	lines := map[string][]string{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 0 {
			lines[f[0]] = f[1:]
		}
	}
	if e, ok := lines["error"]; ok {
		t.Fatalf("parent: %v", e)
	}
	if len(lines["helper"]) != 1 || len(lines["inodes"]) != handedOff || len(lines["closes"]) != handedOff+plain {
		t.Fatalf("parent's report: %v", lines)
	}
	pid, _ := strconv.Atoi(lines["helper"][0])
	proc := fmt.Sprintf("/proc/%d", pid)

	comm, err := os.ReadFile(proc + "/comm")
	if err != nil {
		t.Fatalf("helper %d: %v", pid, err)
	}
	if got := strings.TrimSpace(string(comm)); got != "tcpcraft-linger" {
		t.Errorf("helper's name %q, want tcpcraft-linger", got)
	}
	if sid, err := unix.Getsid(pid); err != nil || sid != pid {
		t.Errorf("helper's session %d (%v), want its own (%d)", sid, err, pid)
	}
	// On amd64 the helper shares the parent's address space (CLONE_VM:
	// nothing copied, and the parent's exit leaves its teardown to the
	// helper); elsewhere it is a fork, a copy. kcmp(2) says which.
	shared, err := sameAddressSpace(cmd.Process.Pid, pid)
	if err != nil {
		t.Fatalf("kcmp: %v", err)
	}
	if wantShared := runtime.GOARCH == "amd64"; shared != wantShared {
		t.Errorf("helper shares the parent's address space: %v, want %v on %s", shared, wantShared, runtime.GOARCH)
	}
	// The helper closes what it does not keep right after the fork; the
	// end of file above says it has closed the output pipe (its first
	// close_range), not yet all the rest: look until it has, or a while.
	want := slices.Sorted(slices.Values(lines["inodes"]))
	var sockets, others []string
	pipes := 0
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		sockets, pipes, others = heldBy(t, proc)
		if (slices.Equal(sockets, want) && pipes == 1 && len(others) == 0) || time.Now().After(deadline) {
			break
		}
	}
	if !slices.Equal(sockets, want) || pipes != 1 || len(others) > 0 {
		t.Errorf("helper holds sockets %v, %d pipes and %v, want the handed-off %v and its one pipe", sockets, pipes, others, want)
	}

	// Closes: a handed-off socket's close only drops a reference; the
	// plain ones wait for a grace period each (milliseconds). Medians of
	// five, so one close preempted on a busy machine does not decide it.
	us := func(s []string) float64 {
		var v []float64
		for _, x := range s {
			f, _ := strconv.ParseFloat(x, 64)
			v = append(v, f)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	off, own := us(lines["closes"][:handedOff]), us(lines["closes"][handedOff:])
	t.Logf("median close: handed off %.0f µs, own %.0f µs", off, own)
	if off*4 > own {
		t.Errorf("a handed-off socket's close took %.0f µs, more than a quarter of an own socket's release (%.0f µs): the parent waited for the grace period", off, own)
	}

	// The parent exits; the helper follows (after a grace period or two).
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("parent: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second) // a bound, not a measure
	for {
		st, err := os.ReadFile(proc + "/stat")
		if err != nil || strings.Contains(string(st), ") Z ") {
			break // gone, or exited and waiting for init to reap it
		}
		if time.Now().After(deadline) {
			t.Fatalf("helper %d still running 30 s after its parent exited", pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sameAddressSpace reports whether processes a and b share one address
// space (kcmp(2), KCMP_VM).
func sameAddressSpace(a, b int) (bool, error) {
	const kcmpVM = 1 // KCMP_VM, include/uapi/linux/kcmp.h
	r, _, e := unix.Syscall6(unix.SYS_KCMP, uintptr(a), uintptr(b), kcmpVM, 0, 0, 0)
	if e != 0 {
		return false, e
	}
	return r == 0, nil
}

// heldBy lists what the process at proc holds: its sockets' inodes
// (sorted), how many pipes, and anything else.
func heldBy(t *testing.T, proc string) (sockets []string, pipes int, others []string) {
	t.Helper()
	ents, err := os.ReadDir(proc + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		link, err := os.Readlink(proc + "/fd/" + e.Name())
		if err != nil {
			continue // closed meanwhile
		}
		switch {
		case strings.HasPrefix(link, "socket:["):
			sockets = append(sockets, strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]"))
		case strings.HasPrefix(link, "pipe:["):
			pipes++
		default:
			others = append(others, e.Name()+" -> "+link)
		}
	}
	slices.Sort(sockets)
	return sockets, pipes, others
}

// TestLaterRefusesNothing: no sockets is an error, not a helper.
func TestLaterRefusesNothing(t *testing.T) {
	if _, err := Later(); err == nil {
		t.Fatal("Later() with no sockets: no error")
	}
}

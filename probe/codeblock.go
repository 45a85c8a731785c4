package probe

// Code blocks: packetdrill's %{ python }% lines. packetdrill takes the
// socket under test's TCP_INFO (and SO_MEMINFO, as SK_MEMINFO_*) when the
// block's time comes, writes the fields as Python variables followed by
// the block's text, and runs the
// whole program in Python after the script. tcpcraft takes the same
// snapshot at the same time, through the kernel's executor, and evaluates
// the block at once with the small Python subset below (assert, print,
// assignments, integer arithmetic, comparisons, and/or/not), so the static
// binary needs nothing else. A block outside that subset is left to
// python3 after the script, as packetdrill does, and fails with the reason
// when there is no python3.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// codeWaitForBlocking is how long a code block without a socket waits for
// a blocking call in progress (an accept) to hand one over.
const codeWaitForBlocking = 200 * time.Millisecond

// tcpInfoLen is what tcpcraft asks getsockopt(TCP_INFO) for: struct
// tcp_info of Linux 6.18 (packetdrill's _tcp_info); older kernels return
// less and the missing fields read as 0.
const tcpInfoLen = 280

// skMeminfoNames are packetdrill's names of getsockopt(SO_MEMINFO)'s
// u32 values, in the kernel's order (SK_MEMINFO_* in
// include/uapi/linux/sock_diag.h).
var skMeminfoNames = []string{
	"SK_MEMINFO_RMEM_ALLOC", "SK_MEMINFO_RCVBUF", "SK_MEMINFO_WMEM_ALLOC", "SK_MEMINFO_SNDBUF",
	"SK_MEMINFO_FWD_ALLOC", "SK_MEMINFO_WMEM_QUEUED", "SK_MEMINFO_OPTMEM", "SK_MEMINFO_BACKLOG",
	"SK_MEMINFO_DROPS",
}

// tcpInfoField is one field of struct tcp_info (include/uapi/linux/tcp.h).
type tcpInfoField struct {
	name  string
	off   int
	size  int // bytes: 1, 2, 4, 8; 0 for the 4-bit wscale fields
	shift uint
	bits  uint
}

var tcpInfoFields = []tcpInfoField{
	{"tcpi_state", 0, 1, 0, 0}, {"tcpi_ca_state", 1, 1, 0, 0}, {"tcpi_retransmits", 2, 1, 0, 0},
	{"tcpi_probes", 3, 1, 0, 0}, {"tcpi_backoff", 4, 1, 0, 0}, {"tcpi_options", 5, 1, 0, 0},
	{"tcpi_snd_wscale", 6, 0, 0, 4}, {"tcpi_rcv_wscale", 6, 0, 4, 4},
	{"tcpi_delivery_rate_app_limited", 7, 0, 0, 1}, {"tcpi_fastopen_client_fail", 7, 0, 1, 2},
	{"tcpi_rto", 8, 4, 0, 0}, {"tcpi_ato", 12, 4, 0, 0}, {"tcpi_snd_mss", 16, 4, 0, 0},
	{"tcpi_rcv_mss", 20, 4, 0, 0}, {"tcpi_unacked", 24, 4, 0, 0}, {"tcpi_sacked", 28, 4, 0, 0},
	{"tcpi_lost", 32, 4, 0, 0}, {"tcpi_retrans", 36, 4, 0, 0}, {"tcpi_fackets", 40, 4, 0, 0},
	{"tcpi_last_data_sent", 44, 4, 0, 0}, {"tcpi_last_ack_sent", 48, 4, 0, 0},
	{"tcpi_last_data_recv", 52, 4, 0, 0}, {"tcpi_last_ack_recv", 56, 4, 0, 0},
	{"tcpi_pmtu", 60, 4, 0, 0}, {"tcpi_rcv_ssthresh", 64, 4, 0, 0}, {"tcpi_rtt", 68, 4, 0, 0},
	{"tcpi_rttvar", 72, 4, 0, 0}, {"tcpi_snd_ssthresh", 76, 4, 0, 0}, {"tcpi_snd_cwnd", 80, 4, 0, 0},
	{"tcpi_advmss", 84, 4, 0, 0}, {"tcpi_reordering", 88, 4, 0, 0}, {"tcpi_rcv_rtt", 92, 4, 0, 0},
	{"tcpi_rcv_space", 96, 4, 0, 0}, {"tcpi_total_retrans", 100, 4, 0, 0},
	{"tcpi_pacing_rate", 104, 8, 0, 0}, {"tcpi_max_pacing_rate", 112, 8, 0, 0},
	{"tcpi_bytes_acked", 120, 8, 0, 0}, {"tcpi_bytes_received", 128, 8, 0, 0},
	{"tcpi_segs_out", 136, 4, 0, 0}, {"tcpi_segs_in", 140, 4, 0, 0},
	{"tcpi_notsent_bytes", 144, 4, 0, 0}, {"tcpi_min_rtt", 148, 4, 0, 0},
	{"tcpi_data_segs_in", 152, 4, 0, 0}, {"tcpi_data_segs_out", 156, 4, 0, 0},
	{"tcpi_delivery_rate", 160, 8, 0, 0}, {"tcpi_busy_time", 168, 8, 0, 0},
	{"tcpi_rwnd_limited", 176, 8, 0, 0}, {"tcpi_sndbuf_limited", 184, 8, 0, 0},
	{"tcpi_delivered", 192, 4, 0, 0}, {"tcpi_delivered_ce", 196, 4, 0, 0},
	{"tcpi_bytes_sent", 200, 8, 0, 0}, {"tcpi_bytes_retrans", 208, 8, 0, 0},
	{"tcpi_dsack_dups", 216, 4, 0, 0}, {"tcpi_reord_seen", 220, 4, 0, 0},
	{"tcpi_rcv_ooopack", 224, 4, 0, 0}, {"tcpi_snd_wnd", 228, 4, 0, 0},
	{"tcpi_rcv_wnd", 232, 4, 0, 0}, {"tcpi_rehash", 236, 4, 0, 0},
	{"tcpi_total_rto", 240, 2, 0, 0}, {"tcpi_total_rto_recoveries", 242, 2, 0, 0},
	{"tcpi_total_rto_time", 244, 4, 0, 0}, {"tcpi_received_ce", 248, 4, 0, 0},
	{"tcpi_delivered_e1_bytes", 252, 4, 0, 0}, {"tcpi_delivered_e0_bytes", 256, 4, 0, 0},
	{"tcpi_delivered_ce_bytes", 260, 4, 0, 0}, {"tcpi_received_e1_bytes", 264, 4, 0, 0},
	{"tcpi_received_e0_bytes", 268, 4, 0, 0}, {"tcpi_received_ce_bytes", 272, 4, 0, 0},
	{"tcpi_ecn_mode", 276, 0, 0, 2}, {"tcpi_accecn_opt_seen", 276, 0, 2, 2},
	{"tcpi_accecn_fail_mode", 276, 0, 4, 4},
}

// codeSymbols are the names packetdrill defines for code blocks.
var codeSymbols = map[string]int64{
	"TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4,
	"TCP_FIN_WAIT2": 5, "TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8,
	"TCP_LAST_ACK": 9, "TCP_LISTEN": 10, "TCP_CLOSING": 11,
	"TCP_CA_Open": 0, "TCP_CA_Disorder": 1, "TCP_CA_CWR": 2, "TCP_CA_Recovery": 3, "TCP_CA_Loss": 4,
	"TCPI_OPT_TIMESTAMPS": 1, "TCPI_OPT_SACK": 2, "TCPI_OPT_WSCALE": 4, "TCPI_OPT_ECN": 8,
	"TCPI_OPT_ECN_SEEN": 16, "TCPI_OPT_SYN_DATA": 32, "TCPI_OPT_USEC_TS": 64, "TCPI_OPT_TFO_CHILD": 128,
	"True": 1, "False": 0,
}

// decodeTCPInfo turns a struct tcp_info into variables; fields beyond what
// the kernel returned read as 0.
func decodeTCPInfo(b []byte) map[string]int64 {
	full := make([]byte, tcpInfoLen)
	copy(full, b)
	vars := make(map[string]int64, len(tcpInfoFields))
	for _, f := range tcpInfoFields {
		var v uint64
		switch f.size {
		case 1:
			v = uint64(full[f.off])
		case 2:
			v = uint64(binary.NativeEndian.Uint16(full[f.off:]))
		case 4:
			v = uint64(binary.NativeEndian.Uint32(full[f.off:]))
		case 8:
			v = binary.NativeEndian.Uint64(full[f.off:])
		case 0: // a bit field, allocated from the low bits (x86, arm64)
			v = uint64(binary.NativeEndian.Uint32(full[f.off:])) >> f.shift & (1<<f.bits - 1)
			if f.off < 8 {
				v = uint64(full[f.off]) >> f.shift & (1<<f.bits - 1)
			}
		}
		vars[f.name] = int64(v)
	}
	return vars
}

// codeState is what code blocks share over a run: the variables they
// assign (Python keeps them from block to block) and, for python3, the
// program packetdrill would have written.
type codeState struct {
	vars    map[string]int64
	program strings.Builder
	// python is the first block the evaluator could not handle (run by
	// python3 after the script) and why.
	python    *Event
	pythonWhy string
}

// errNeedPython marks a block outside the evaluator's Python subset.
type errNeedPython struct{ why string }

func (e errNeedPython) Error() string { return e.why }

// code runs a code block: TCP_INFO of the socket under test now, then the
// block.
func (r *runner) code(ev *Event) error {
	if r.env.Kernel == nil {
		return r.fail(ev, "code blocks need a kernel to run on (not with --target)")
	}
	live, ok := r.fds[r.sut]
	if (!r.haveSUT || !ok) && r.blocking != nil {
		// A blocking accept may be returning the socket right now
		// (its reply crosses from the executor): give it a moment.
		if err := r.awaitBlocking(codeWaitForBlocking); err != nil {
			return err
		}
		live, ok = r.fds[r.sut]
	}
	if !r.haveSUT || !ok {
		return r.fail(ev, "runtime error in code: no socket to use for code")
	}
	call := r.env.Kernel.Start(Request{Call: "getsockopt", FD: live, Ints: []int64{unix.SOL_TCP, unix.TCP_INFO}, Len: tcpInfoLen})
	var rep Reply
	select {
	case rep = <-call.Done:
	case <-time.After(nonBlockingLimit):
		return r.fail(ev, "runtime error in code: getsockopt(TCP_INFO) did not return")
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
	if rep.Err != "" || rep.Ret < 0 {
		return r.fail(ev, "runtime error in code: can't find getsockopt to get TCP info (%s%s)", rep.Err, errnoSuffix(rep))
	}
	info := decodeTCPInfo(rep.Data)
	if strings.Contains(ev.Code.Text, "SK_MEMINFO_") {
		// packetdrill takes SO_MEMINFO with every block; tcpcraft
		// only for a block that reads it, after TCP_INFO, so that the
		// others keep their timing.
		call := r.env.Kernel.Start(Request{Call: "getsockopt", FD: live, Ints: []int64{unix.SOL_SOCKET, unix.SO_MEMINFO}, Len: 4 * len(skMeminfoNames)})
		select {
		case rep = <-call.Done:
		case <-time.After(nonBlockingLimit):
			return r.fail(ev, "runtime error in code: getsockopt(SO_MEMINFO) did not return")
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
		if rep.Err != "" || rep.Ret < 0 {
			return r.fail(ev, "runtime error in code: can't find getsockopt to get sk_meminfo (%s%s)", rep.Err, errnoSuffix(rep))
		}
		for i, name := range skMeminfoNames {
			if len(rep.Data) >= 4*(i+1) {
				info[name] = int64(binary.NativeEndian.Uint32(rep.Data[4*i:]))
			}
		}
	}
	if r.codes.vars == nil {
		r.codes.vars = map[string]int64{}
	}
	r.appendPython(ev, info)
	if r.codes.python != nil {
		// Python runs the rest, in order, as it must (a later block may
		// read what an earlier one assigned).
		return nil
	}
	env := func(name string) (int64, bool) {
		if v, ok := r.codes.vars[name]; ok {
			return v, true
		}
		if v, ok := info[name]; ok {
			return v, true
		}
		v, ok := codeSymbols[name]
		return v, ok
	}
	out, err := runCode(ev.Code.Text, env, r.codes.vars)
	for _, line := range out {
		r.verbosef("code: %s", line)
	}
	var np errNeedPython
	if errors.As(err, &np) {
		r.codes.python, r.codes.pythonWhy = ev, np.why
		r.verbosef("code block at line %d left to python3: %s", ev.Pos.Line, np.why)
		return nil
	}
	if err != nil {
		return r.fail(ev, "runtime error in code: %v", err)
	}
	return nil
}

func errnoSuffix(rep Reply) string {
	if rep.Ret < 0 && rep.Errno != 0 {
		return ErrnoName(rep.Errno)
	}
	return ""
}

// appendPython adds the snapshot and the block to the program python3
// would run (packetdrill's code file).
func (r *runner) appendPython(ev *Event, info map[string]int64) {
	b := &r.codes.program
	if b.Len() == 0 {
		// packetdrill's preamble: an exception names the script line.
		b.WriteString("import sys\n_line = 0\n" +
			"def _hook(t, v, tb):\n" +
			"    sys.stderr.write('tcpcraft-code-line %d: %s: %s\\n' % (_line, t.__name__, v))\n" +
			"sys.excepthook = _hook\n")
		names := make([]string, 0, len(codeSymbols))
		for n := range codeSymbols {
			if n != "True" && n != "False" {
				names = append(names, n)
			}
		}
		for _, n := range names {
			fmt.Fprintf(b, "%s = %d\n", n, codeSymbols[n])
		}
	}
	for _, f := range tcpInfoFields {
		fmt.Fprintf(b, "%s = %d\n", f.name, info[f.name])
	}
	for _, name := range skMeminfoNames {
		if v, ok := info[name]; ok {
			fmt.Fprintf(b, "%s = %d\n", name, v)
		}
	}
	fmt.Fprintf(b, "_file = %q\n_line = %d\n%s\n\n", r.s.Path, ev.Pos.Line, dedent(ev.Code.Text))
}

// dedent removes the white space every non-blank line starts with, so a
// one-line block "%{ assert x }%" is valid Python.
func dedent(text string) string {
	lines := strings.Split(strings.Trim(text, "\n"), "\n")
	prefix := ""
	first := true
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		ws := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
		if first {
			prefix, first = ws, false
			continue
		}
		for !strings.HasPrefix(ws, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	for i, l := range lines {
		lines[i] = strings.TrimPrefix(l, prefix)
	}
	return strings.Join(lines, "\n")
}

// finishCode runs, after the script, the blocks left to python3.
func (r *runner) finishCode(ctx context.Context) error {
	ev := r.codes.python
	if ev == nil {
		return nil
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		return r.fail(ev, "runtime error in code: %s, and there is no python3 to run it", r.codes.pythonWhy)
	}
	f, err := os.CreateTemp("", "tcpcraft-code-*.py")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(r.codes.program.String()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	out, err := exec.CommandContext(ctx, py, f.Name()).CombinedOutput()
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			r.verbosef("code: %s", l)
		}
	}
	if err != nil {
		fl := r.fail(ev, "error executing code in python3 (needed for %s): %v", r.codes.pythonWhy, err)
		for _, l := range strings.Split(string(out), "\n") {
			var line int
			var what string
			if n, _ := fmt.Sscanf(l, "tcpcraft-code-line %d:", &line); n == 1 {
				_, what, _ = strings.Cut(l, ": ")
				fl.Line = line
				fl.Msg = "runtime error in code: " + what
			}
		}
		if s := strings.TrimSpace(string(out)); s != "" {
			fl.Details = append(fl.Details, "python3: "+truncate(s, 2000))
		}
		return fl
	}
	return nil
}

// runCode evaluates a block in the Python subset: statements separated by
// newlines or ";", "\" continuing a line, "#" comments; assert EXPR[, MSG],
// print(EXPR, ...), NAME = EXPR, NAME op= EXPR, pass. Assignments go to
// vars. It returns what print printed.
func runCode(text string, env func(string) (int64, bool), vars map[string]int64) ([]string, error) {
	toks, err := codeLex(text)
	if err != nil {
		return nil, err
	}
	p := &codeParser{toks: toks, env: env}
	var out []string
	for {
		for p.is(";") || p.is("\n") {
			p.i++
		}
		if p.i >= len(p.toks) {
			return out, nil
		}
		t := p.toks[p.i]
		switch {
		case t == "assert":
			p.i++
			cond, text, err := p.exprText()
			if err != nil {
				return out, err
			}
			msg := ""
			if p.is(",") {
				p.i++
				start := p.i
				v, mtext, err := p.exprText()
				var np errNeedPython
				switch {
				case errors.As(err, &np):
					// A message the evaluator cannot compute (a
					// formatted string): shown as written.
					p.i = start
					for p.i < len(p.toks) && !p.is(";") && !p.is("\n") {
						p.i++
					}
					msg = " (" + strings.Join(p.toks[start:p.i], " ") + ")"
				case err != nil:
					return out, err
				default:
					msg = fmt.Sprintf(" (%s = %d)", mtext, v)
				}
			}
			if cond == 0 {
				return out, fmt.Errorf("assertion failed: %s%s", text, msg)
			}
		case t == "print":
			p.i++
			if !p.is("(") {
				return out, errNeedPython{"print without parentheses"}
			}
			p.i++
			var parts []string
			for !p.is(")") {
				v, err := p.expr()
				if err != nil {
					return out, err
				}
				parts = append(parts, strconv.FormatInt(v, 10))
				if p.is(",") {
					p.i++
				} else if !p.is(")") {
					return out, errNeedPython{fmt.Sprintf("unexpected %q in print", p.peek())}
				}
			}
			p.i++
			out = append(out, strings.Join(parts, " "))
		case t == "pass":
			p.i++
		case isCodeName(t) && p.i+1 < len(p.toks) && isAssignOp(p.toks[p.i+1]):
			op := p.toks[p.i+1]
			p.i += 2
			v, err := p.expr()
			if err != nil {
				return out, err
			}
			if op != "=" {
				old, ok := env(t)
				if !ok {
					return out, fmt.Errorf("name %q is not defined", t)
				}
				if v, err = binop(strings.TrimSuffix(op, "="), old, v); err != nil {
					return out, err
				}
			}
			vars[t] = v
		default:
			return out, errNeedPython{fmt.Sprintf("statement starting with %q", t)}
		}
		if p.i < len(p.toks) && !p.is(";") && !p.is("\n") {
			return out, errNeedPython{fmt.Sprintf("unexpected %q after a statement", p.peek())}
		}
	}
}

func isAssignOp(s string) bool {
	switch s {
	case "=", "+=", "-=", "*=", "//=", "%=", "|=", "&=", "^=", "<<=", ">>=":
		return true
	}
	return false
}

func isCodeName(s string) bool {
	if s == "" || !(s[0] == '_' || s[0] >= 'a' && s[0] <= 'z' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	switch s {
	case "and", "or", "not", "assert", "print", "pass", "if", "else", "for", "while", "in", "is", "lambda", "def":
		return false
	}
	return true
}

// codeLex splits a block into tokens; newlines that end statements are
// tokens of their own.
func codeLex(text string) ([]string, error) {
	var toks []string
	depth := 0
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == '\\' && i+1 < len(text) && text[i+1] == '\n':
			i += 2
		case c == '\\' && i+2 < len(text) && text[i+1] == '\r' && text[i+2] == '\n':
			i += 3
		case c == '\n':
			if depth == 0 {
				toks = append(toks, "\n")
			}
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(text) && text[i] != '\n' {
				i++
			}
		case c >= '0' && c <= '9':
			j := i
			for j < len(text) && (isWordCh(text[j])) {
				j++
			}
			toks = append(toks, text[i:j])
			i = j
		case isWordCh(c):
			j := i
			for j < len(text) && isWordCh(text[j]) {
				j++
			}
			toks = append(toks, text[i:j])
			i = j
		case c == '"' || c == '\'':
			// Kept whole, quotes and all; only an assert's message may
			// hold one (see runCode).
			j := i + 1
			for j < len(text) && text[j] != c && text[j] != '\n' {
				if text[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(text) || text[j] != c {
				return nil, errNeedPython{"an unterminated string literal"}
			}
			toks = append(toks, text[i:j+1])
			i = j + 1
		default:
			op := ""
			for _, o := range []string{"<<=", ">>=", "//=", "**", "//", "<<", ">>", "<=", ">=", "==", "!=", "+=", "-=", "*=", "%=", "|=", "&=", "^="} {
				if strings.HasPrefix(text[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				if !strings.ContainsRune("+-*%&|^~<>()=,;.[]{}:/", rune(c)) {
					return nil, errNeedPython{fmt.Sprintf("character %q", c)}
				}
				op = string(c)
			}
			switch op {
			case "(", "[", "{":
				depth++
			case ")", "]", "}":
				depth--
			}
			toks = append(toks, op)
			i += len(op)
		}
	}
	return toks, nil
}

type codeParser struct {
	toks  []string
	i     int
	env   func(string) (int64, bool)
	depth int // nesting of unary operators and parentheses, bounded
}

// maxCodeDepth bounds nesting so that a hostile block cannot exhaust the
// stack; Python's own parser stops near this depth too.
const maxCodeDepth = 200

func (p *codeParser) is(s string) bool { return p.i < len(p.toks) && p.toks[p.i] == s }
func (p *codeParser) peek() string {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return "end of block"
}

// exprText evaluates an expression and returns its source text too.
func (p *codeParser) exprText() (int64, string, error) {
	start := p.i
	v, err := p.expr()
	text := strings.Join(p.toks[start:p.i], " ")
	return v, text, err
}

func truth(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func (p *codeParser) expr() (int64, error) { return p.or() }

func (p *codeParser) or() (int64, error) {
	v, err := p.and()
	for err == nil && p.is("or") {
		p.i++
		var w int64
		if w, err = p.and(); v == 0 {
			v = w
		}
	}
	return v, err
}

func (p *codeParser) and() (int64, error) {
	v, err := p.not()
	for err == nil && p.is("and") {
		p.i++
		var w int64
		if w, err = p.not(); v != 0 {
			v = w
		}
	}
	return v, err
}

func (p *codeParser) not() (int64, error) {
	if p.is("not") {
		p.i++
		if p.depth++; p.depth > maxCodeDepth {
			return 0, errNeedPython{"nesting too deep"}
		}
		defer func() { p.depth-- }()
		v, err := p.not()
		return truth(v == 0), err
	}
	return p.comparison()
}

// comparison handles Python's chains: a <= b <= c is a <= b and b <= c.
func (p *codeParser) comparison() (int64, error) {
	left, err := p.binary(0)
	if err != nil {
		return 0, err
	}
	result := int64(-1) // no comparison yet
	for {
		op := p.peek()
		switch op {
		case "==", "!=", "<", "<=", ">", ">=":
		default:
			if result < 0 {
				return left, nil
			}
			return result, nil
		}
		p.i++
		right, err := p.binary(0)
		if err != nil {
			return 0, err
		}
		var ok bool
		switch op {
		case "==":
			ok = left == right
		case "!=":
			ok = left != right
		case "<":
			ok = left < right
		case "<=":
			ok = left <= right
		case ">":
			ok = left > right
		case ">=":
			ok = left >= right
		}
		if result != 0 {
			result = truth(ok)
		}
		left = right
	}
}

// Binary operators by Python's precedence, loosest first.
var binaryLevels = [][]string{{"|"}, {"^"}, {"&"}, {"<<", ">>"}, {"+", "-"}, {"*", "//", "%"}}

func (p *codeParser) binary(level int) (int64, error) {
	if level == len(binaryLevels) {
		return p.unary()
	}
	v, err := p.binary(level + 1)
	for err == nil {
		op := p.peek()
		found := false
		for _, o := range binaryLevels[level] {
			found = found || o == op
		}
		if !found {
			break
		}
		p.i++
		var w int64
		if w, err = p.binary(level + 1); err == nil {
			v, err = binop(op, v, w)
		}
	}
	if err == nil && (p.is("/") || p.is("**")) {
		return 0, errNeedPython{fmt.Sprintf("operator %s", p.peek())}
	}
	return v, err
}

func binop(op string, a, b int64) (int64, error) {
	switch op {
	case "|":
		return a | b, nil
	case "^":
		return a ^ b, nil
	case "&":
		return a & b, nil
	case "<<":
		if b < 0 || b > 62 {
			return 0, errNeedPython{"a shift out of int64 range"}
		}
		return a << b, nil
	case ">>":
		if b < 0 {
			return 0, errors.New("negative shift count")
		}
		return a >> min(b, 63), nil
	case "+":
		return a + b, nil
	case "-":
		return a - b, nil
	case "*":
		return a * b, nil
	case "//", "%":
		if b == 0 {
			return 0, errors.New("integer division or modulo by zero")
		}
		// Python floors; Go truncates.
		q, m := a/b, a%b
		if m != 0 && (m < 0) != (b < 0) {
			q, m = q-1, m+b
		}
		if op == "//" {
			return q, nil
		}
		return m, nil
	}
	return 0, errNeedPython{"operator " + op}
}

func (p *codeParser) unary() (int64, error) {
	if p.depth++; p.depth > maxCodeDepth {
		return 0, errNeedPython{"nesting too deep"}
	}
	defer func() { p.depth-- }()
	switch p.peek() {
	case "-":
		p.i++
		v, err := p.unary()
		return -v, err
	case "+":
		p.i++
		return p.unary()
	case "~":
		p.i++
		v, err := p.unary()
		return ^v, err
	}
	return p.atom()
}

func (p *codeParser) atom() (int64, error) {
	if p.i >= len(p.toks) {
		return 0, errNeedPython{"an incomplete expression"}
	}
	t := p.toks[p.i]
	switch {
	case t == "(":
		p.i++
		v, err := p.expr()
		if err != nil {
			return 0, err
		}
		if !p.is(")") {
			return 0, errNeedPython{fmt.Sprintf("unexpected %q in parentheses", p.peek())}
		}
		p.i++
		return v, nil
	case t[0] >= '0' && t[0] <= '9':
		p.i++
		v, err := strconv.ParseInt(strings.ReplaceAll(t, "_", ""), 0, 64)
		if err != nil {
			if strings.HasPrefix(t, "0") && len(t) > 1 && !strings.ContainsAny(t[1:2], "xXoObB") {
				return 0, errNeedPython{"number " + t}
			}
			return 0, errNeedPython{"number " + t}
		}
		return v, nil
	case t[0] == '"' || t[0] == '\'':
		return 0, errNeedPython{"a string literal"}
	case isCodeName(t):
		p.i++
		if p.is("(") || p.is(".") || p.is("[") {
			return 0, errNeedPython{fmt.Sprintf("%s%s (calls, attributes and indexing)", t, p.peek())}
		}
		v, ok := p.env(t)
		if !ok {
			return 0, fmt.Errorf("name %q is not defined", t)
		}
		return v, nil
	}
	return 0, errNeedPython{fmt.Sprintf("%q", t)}
}

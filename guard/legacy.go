package guard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
)

// Older tcpcraft versions guarded with an iptables rule in the INPUT chain
// of the filter table,
//
//	-A INPUT -d 10.0.2.21/32 -p tcp -m tcp --dport 40000 -m comment --comment "tcpcraft pid=42 start=1234 guard 10.0.2.21:40000" -j DROP
//
// added and deleted by running iptables. A run of such a version that was
// killed left its rule; cleanupIPTables finds and deletes those. This is
// the only use of iptables left: removal of what iptables made.

// legacyChain is the chain the old rules sit in.
const legacyChain = "INPUT"

// cleanupIPTables removes the stale tcpcraft rules of iptables's INPUT
// chain; with no iptables installed there are none to remove.
func (f Firewall) cleanupIPTables(ctx context.Context) (removed []string, err error) {
	name := f.IPTables
	if name == "" {
		name = "iptables"
	}
	iptables, err := exec.LookPath(name)
	if err != nil {
		return nil, nil
	}
	out, err := runIPTables(ctx, iptables, "-w", "-S", legacyChain)
	if err != nil {
		return nil, fmt.Errorf("removing stale iptables rules of older tcpcraft versions: listing %s: %w", legacyChain, err)
	}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		args, err := splitRuleLine(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("reading rule %q: %w", line, err))
			continue
		}
		if len(args) < 2 || args[0] != "-A" || args[1] != legacyChain {
			continue
		}
		pid, start, ok := owner(ruleComment(args))
		if !ok || f.ownerAlive(pid, start) {
			continue
		}
		del := append([]string{"-w", "-D"}, args[1:]...)
		if _, err := runIPTables(ctx, iptables, del...); err != nil {
			errs = append(errs, fmt.Errorf("removing %q: %w", line, err))
			continue
		}
		removed = append(removed, "iptables rule "+line)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("removing stale iptables rules of older tcpcraft versions: %w", err)
	}
	return removed, nil
}

// runIPTables runs iptables and returns its standard output; a failure
// carries what iptables printed.
func runIPTables(ctx context.Context, iptables string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, iptables, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		if msg != "" {
			return nil, fmt.Errorf("%s %s: %w: %s", filepath.Base(iptables), strings.Join(args, " "), err, msg)
		}
		return nil, fmt.Errorf("%s %s: %w", filepath.Base(iptables), strings.Join(args, " "), err)
	}
	return stdout.Bytes(), nil
}

// ruleComment returns the value after --comment in a split rule, or "".
func ruleComment(args []string) string {
	for i := 0; i+1 < len(args); i++ {
		if args[i] == "--comment" {
			return args[i+1]
		}
	}
	return ""
}

// splitRuleLine splits one line of `iptables -S` output into arguments.
// iptables quotes an argument that contains spaces with double quotes and
// escapes '"' and '\' inside with a backslash.
func splitRuleLine(line string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg, inQuote := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQuote = !inQuote
			inArg = true
		case !inQuote && (c == ' ' || c == '\t' || c == '\r'):
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inQuote {
		return nil, errors.New("unterminated quote")
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}

package lab

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// ErrNeedsPrivileges is returned (wrapped) when the lab would need root.
var ErrNeedsPrivileges = errors.New("needs root or CAP_NET_ADMIN (and CAP_SYS_ADMIN for network namespaces); run it as root, e.g. with sudo")

// Capability bit numbers from linux/capability.h.
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// CheckPrivileges reports whether this process may build a lab: creating
// and entering network namespaces needs CAP_SYS_ADMIN, configuring links and
// addresses needs CAP_NET_ADMIN. Root normally has both.
func CheckPrivileges() error {
	eff, err := effectiveCapabilities()
	if err != nil {
		return fmt.Errorf("lab: checking privileges: %w", err)
	}
	for _, bit := range []uint{capNetAdmin, capSysAdmin} {
		if eff&(1<<bit) == 0 {
			return fmt.Errorf("lab: %w", ErrNeedsPrivileges)
		}
	}
	return nil
}

// effectiveCapabilities reads the CapEff mask of this process.
func effectiveCapabilities() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if hex, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			v, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				return 0, fmt.Errorf("CapEff %q: %w", hex, err)
			}
			return v, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("/proc/self/status has no CapEff line")
}

// ipTool runs the iproute2 `ip` command.
type ipTool struct{ path string }

func newIPTool() (ipTool, error) {
	path, err := exec.LookPath("ip")
	if err != nil {
		return ipTool{}, fmt.Errorf("lab: the ip command (Debian package iproute2) is needed: %w", err)
	}
	return ipTool{path: path}, nil
}

// run runs `ip args...` and returns its standard output; the error names
// the command and carries what ip wrote on standard error.
func (t ipTool) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, t.path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return nil, fmt.Errorf("ip %s: %w", strings.Join(args, " "), err)
		}
		return nil, fmt.Errorf("ip %s: %s (%w)", strings.Join(args, " "), msg, err)
	}
	return stdout.Bytes(), nil
}

// links lists the devices of namespace ns with their addresses.
func (t ipTool) links(ctx context.Context, ns string) ([]Link, error) {
	out, err := t.run(ctx, "-d", "-j", "-n", ns, "addr", "show")
	if err != nil {
		return nil, err
	}
	links, err := parseLinks(out)
	if err != nil {
		return nil, fmt.Errorf("namespace %s: %w", ns, err)
	}
	return links, nil
}

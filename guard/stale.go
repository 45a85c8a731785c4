package guard

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/tcpcraft/tcpcraft/internal/procfile"

	"github.com/google/nftables"
)

// commentPattern parses the pid and start time back out of a comment.
// Compiled when first used (by cleanup), not at every start-up.
var commentPattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^tcpcraft pid=([0-9]+)(?: start=([0-9]+))?(?: |$)`)
})

// tableNamePattern parses the pid out of a table name.
var tableNamePattern = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^` + TablePrefix + `([0-9]+)-[0-9a-f]+$`)
})

// CleanupStale removes, in the network namespace of the calling thread,
// the guards whose owner is gone: no such process, a zombie, or a process
// with the same pid that started at another time (the pid was reused).
// Guards of live runs are kept, and so are owned tables, which the kernel
// ties to a live socket. It looks at
//
//   - nf_tables tables of family inet named tcpcraft-PID-…, with the owner
//     read from the comment on the guard rule (or the pid in the name);
//   - INPUT rules of iptables whose comment starts "tcpcraft pid=", as
//     older tcpcraft versions made them (skipped when iptables is not
//     installed: then there are none).
//
// The pid is looked up in the caller's pid namespace. It returns what it
// removed, one line each ("table inet tcpcraft-42-9f3a1c07: tcpcraft
// pid=42 … guard 10.0.2.21:40000", or the iptables rule as iptables -S
// prints it); errors for single items are joined and the others are still
// removed.
func (f Firewall) CleanupStale(ctx context.Context) (removed []string, err error) {
	tables, nftErr := f.cleanupTables()
	rules, iptErr := f.cleanupIPTables(ctx)
	return append(tables, rules...), errors.Join(nftErr, iptErr)
}

// cleanupTables removes the stale tcpcraft- tables.
func (f Firewall) cleanupTables() (removed []string, err error) {
	conn, err := nftables.New(nftables.AsLasting())
	if err != nil {
		return nil, netlinkError("removing stale RST guards: opening a netfilter netlink socket", err)
	}
	defer conn.CloseLasting()
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, netlinkError("removing stale RST guards: listing nf_tables tables", err)
	}
	var errs []error
	for _, t := range tables {
		if !strings.HasPrefix(t.Name, TablePrefix) || tableFlags(t)&nftTableFOwner != 0 {
			continue
		}
		comment := tableComment(conn, t)
		pid, start, ok := owner(comment)
		if !ok {
			m := tableNamePattern().FindStringSubmatch(t.Name)
			if m == nil {
				continue // not a name tcpcraft gives
			}
			pid, _ = strconv.Atoi(m[1])
			start = ""
		}
		if f.ownerAlive(pid, start) {
			continue
		}
		conn.DelTable(t)
		if err := conn.Flush(); err != nil {
			if !isNotFound(err) { // gone meanwhile: its owner removed it
				errs = append(errs, netlinkError("removing stale table inet "+t.Name, err))
			}
			continue
		}
		line := "table inet " + t.Name
		if comment != "" {
			line += ": " + comment
		}
		removed = append(removed, line)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("removing stale RST guards: %w", err)
	}
	return removed, nil
}

// tableFlags returns t's NFTA_TABLE_FLAGS. The kernel sends them big
// endian (as every nf_tables number); google/nftables v0.3.0 decodes them
// in the host's byte order, so they are put back into bytes that way and
// read big endian.
func tableFlags(t *nftables.Table) uint32 {
	return binary.BigEndian.Uint32(binary.NativeEndian.AppendUint32(nil, t.Flags))
}

// tableComment returns the tcpcraft comment on the guard rule of t, or "".
func tableComment(conn *nftables.Conn, t *nftables.Table) string {
	rules, err := conn.GetRules(t, &nftables.Chain{Name: ChainName, Table: t})
	if err != nil {
		return ""
	}
	for _, r := range rules {
		if c := udataComment(r.UserData); strings.HasPrefix(c, commentPrefix) {
			return c
		}
	}
	return ""
}

// udataComment reads the comment out of nftables user data (libnftnl's
// TLVs: type, length, value; the comment is type 0, NUL-terminated). Why
// not userdata.GetString: it slices before it checks the length, and the
// bytes come from whoever wrote the rule.
func udataComment(b []byte) string {
	for len(b) >= 2 {
		typ, n := b[0], int(b[1])
		if 2+n > len(b) {
			return ""
		}
		if typ == 0 {
			return string(bytes.TrimRight(b[2:2+n], "\x00"))
		}
		b = b[2+n:]
	}
	return ""
}

// owner parses "tcpcraft pid=P [start=S] ..." into P and S.
func owner(comment string) (pid int, start string, ok bool) {
	m := commentPattern().FindStringSubmatch(comment)
	if m == nil {
		return 0, "", false
	}
	pid, err := strconv.Atoi(m[1])
	if err != nil {
		return 0, "", false
	}
	return pid, m[2], true
}

// ownerAlive reports whether pid is a live (non-zombie) process and, when
// a start time was recorded, the same process that recorded it.
func (f Firewall) ownerAlive(pid int, recordedStart string) bool {
	if pid <= 0 {
		return false
	}
	start, err := processStart(f.procRoot(), pid)
	if err != nil {
		return false
	}
	return recordedStart == "" || recordedStart == start
}

// processStart returns field 22 of /proc/PID/stat (start time in clock
// ticks after boot), or an error if the process does not exist or is a
// zombie. The comm field (2) may hold spaces and parentheses, so fields are
// counted after its last ')'.
func processStart(procRoot string, pid int) (string, error) {
	b, err := procfile.Read(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", fmt.Errorf("pid %d: unreadable stat line", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	// fields[0] is field 3 (state), so field 22 is fields[19].
	if len(fields) < 20 {
		return "", fmt.Errorf("pid %d: short stat line", pid)
	}
	if fields[0] == "Z" || fields[0] == "X" {
		return "", fmt.Errorf("pid %d: process has exited", pid)
	}
	return fields[19], nil
}

func (f Firewall) procRoot() string {
	if f.ProcRoot == "" {
		return "/proc"
	}
	return f.ProcRoot
}

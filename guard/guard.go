package guard

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

const (
	// TablePrefix starts the name of every table tcpcraft makes:
	// tcpcraft-PID-RANDOM.
	TablePrefix = "tcpcraft-"
	// ChainName is the guard's base chain in its table.
	ChainName = "guard"

	// commentPrefix starts every comment tcpcraft writes, on nft tables
	// and rules and on the iptables rules of older versions.
	commentPrefix = "tcpcraft pid="

	// netlinkTimeout bounds one exchange with the kernel: nf_tables
	// answers at once, so this only guards against a reply that never
	// comes.
	netlinkTimeout = 10 * time.Second
)

// From linux/netfilter/nf_tables.h; golang.org/x/sys/unix lacks them.
const (
	nftaTableUserdata = 6   // NFTA_TABLE_USERDATA (Linux 5.10)
	nftTableFOwner    = 0x2 // NFT_TABLE_F_OWNER (Linux 5.12)
)

// Failure-injection points, in the order Install and Remove pass them
// (Firewall.fail; tests only).
const (
	stepSocket     = "socket"     // before the netlink socket is opened
	stepCreate     = "create"     // before the table, chain and rule are sent
	stepCreateDone = "create-ack" // after the kernel committed them
	stepDelete     = "delete"     // before Remove deletes the table
)

// Firewall installs guards and removes stale ones. The zero value is what
// tcpcraft uses: the calling process's pid, /proc, /run/netns and
// "iptables" from PATH.
type Firewall struct {
	// PID is the pid written into comments; 0 means os.Getpid() at the
	// time of the call.
	PID int
	// ProcRoot is where process liveness is looked up; "" means "/proc".
	ProcRoot string
	// NetnsDir is where named network namespaces are listed (Sweep);
	// "" means "/run/netns", where `ip netns` keeps them.
	NetnsDir string
	// IPTables is the iptables command whose INPUT chain CleanupStale
	// searches for rules of older tcpcraft versions; "" means "iptables".
	// A missing iptables means there are none to find.
	IPTables string
	// Unowned makes Install create tables that are not owned by its
	// socket, as it must on a kernel before 5.12: such a table outlives
	// a killed process until CleanupStale removes it. Tests use it to
	// leave what a killed run on such a kernel leaves.
	Unowned bool

	// fail, when set, is called at each step of Install and Remove and
	// makes the step fail with its error (tests of the undo paths).
	fail func(step string) error
}

// Guard is one installed guard. Its methods are safe for concurrent use;
// Remove may be called any number of times, also on a nil *Guard.
type Guard struct {
	scope   Scope
	what    string // "10.0.2.21:40000", "*:80", "0.0.0.0:80", "10.0.2.21:40000-40063" ...
	comment string
	table   string
	matches []string // the rules' matches in nft syntax, one per address
	owned   bool

	mu      sync.Mutex
	conn    *nftables.Conn // the lasting connection that made (and owns) the table; nil once removed
	raw     *netlink.Conn  // its socket
	fail    func(step string) error
	removed bool
	deleted bool // Delete deleted the table; Remove has only the socket left to close
}

// Install installs the guard for local with the zero Firewall; see
// Firewall.Install.
func Install(ctx context.Context, local netip.AddrPort) (*Guard, error) {
	return Firewall{}.Install(ctx, local)
}

// InstallScope installs a guard for scope with the zero Firewall; see
// Firewall.InstallScope.
func InstallScope(ctx context.Context, scope Scope) (*Guard, error) {
	return Firewall{}.InstallScope(ctx, scope)
}

// Scope is what one guard protects: inbound TCP segments addressed to one
// of Addrs and to a port in [PortLow, PortHigh] — one port, or the block
// of source ports a prober run sends from. Each address selects as
// Firewall.Install says (a zero Addr: both families); Addrs empty means
// one zero Addr.
type Scope struct {
	Addrs             []netip.Addr
	PortLow, PortHigh uint16
}

// maxScopeAddrs bounds Scope.Addrs: one rule each, in one table.
const maxScopeAddrs = 16

// Install makes the kernel drop, on the INPUT path, inbound TCP segments
// addressed to local, in the network namespace of the calling thread. The
// address selects what is dropped:
//
//   - an IPv4 or IPv6 address: segments to that address and port
//     (an IPv4-mapped IPv6 address counts as IPv4);
//   - 0.0.0.0 or ::: segments of that family to the port, whatever the
//     address (a listener on all addresses of one family);
//   - the zero netip.Addr: segments of both families to the port.
//
// Cancellation of ctx is honoured only before the first change to the
// system. After that Install finishes, whatever ctx says, so that its
// answer is always the truth: either a Guard, which the caller must
// Remove, or an error, and then nothing of it is left.
func (f Firewall) Install(ctx context.Context, local netip.AddrPort) (*Guard, error) {
	return f.InstallScope(ctx, Scope{Addrs: []netip.Addr{local.Addr()}, PortLow: local.Port(), PortHigh: local.Port()})
}

// InstallScope is Install for a Scope: one table, with one rule per
// address that drops segments to any port of the range, installed and
// removed as one. A prober run that sends from a block of source ports
// (outside ip_local_port_range) guards them all with it.
func (f Firewall) InstallScope(ctx context.Context, scope Scope) (*Guard, error) {
	if len(scope.Addrs) == 0 {
		scope.Addrs = []netip.Addr{{}}
	}
	scope.Addrs = slices.Clone(scope.Addrs)
	for i, a := range scope.Addrs {
		scope.Addrs[i] = a.Unmap()
	}
	what := describeScope(scope)
	fail := func(err error) (*Guard, error) {
		return nil, fmt.Errorf("installing the RST guard for %s: %w", what, err)
	}
	if scope.PortLow == 0 || scope.PortHigh == 0 {
		return fail(errors.New("port 0"))
	}
	if scope.PortLow > scope.PortHigh {
		return fail(errors.New("the port range is empty"))
	}
	if len(scope.Addrs) > maxScopeAddrs {
		return fail(fmt.Errorf("%d addresses, at most %d", len(scope.Addrs), maxScopeAddrs))
	}
	for _, a := range scope.Addrs {
		if a.Zone() != "" {
			return fail(errors.New("an address with a zone cannot be matched"))
		}
	}
	pid := f.PID
	if pid == 0 {
		pid = os.Getpid()
	}
	comment := fmt.Sprintf("%s%d", commentPrefix, pid)
	if start, err := processStart(f.procRoot(), pid); err == nil {
		comment += " start=" + start
	}
	comment += " guard " + what
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	if err := f.step(stepSocket); err != nil {
		return fail(err)
	}

	g := &Guard{scope: scope, what: what, comment: comment, fail: f.fail}
	for _, a := range scope.Addrs {
		g.matches = append(g.matches, ruleMatch(a, scope.PortLow, scope.PortHigh))
	}
	var err error
	g.conn, err = nftables.New(nftables.AsLasting(), nftables.WithSockOptions(func(c *netlink.Conn) error {
		g.raw = c
		return nil
	}))
	if err != nil {
		return fail(netlinkError("opening a netfilter netlink socket", err))
	}
	if g.raw == nil {
		g.conn.CloseLasting()
		return fail(errors.New("the nftables library opened no socket"))
	}
	// From here on every failure undoes what was done: abandon deletes
	// the table if it was made, and closes the socket, which deletes an
	// owned table in any case.
	for attempt := 0; ; attempt++ {
		g.table, err = tableName(pid)
		if err != nil {
			g.abandon()
			return fail(err)
		}
		err = g.create(!f.Unowned)
		if errors.Is(err, unix.EOPNOTSUPP) && !f.Unowned {
			// A kernel before 5.12 knows no owner flag.
			err = g.create(false)
		}
		if errors.Is(err, unix.EEXIST) && attempt < 3 {
			continue // a name taken (by chance, or by a recycled pid's table)
		}
		break
	}
	if err != nil {
		g.abandon()
		return fail(err)
	}
	return g, nil
}

// create makes the table, its chain and its rule in one nf_tables batch:
// one sendmsg, which the kernel applies whole or not at all, and one
// answer (only the batch's last message asks for an acknowledgement; a
// message that fails is answered with its error whatever it asked). The
// table is owned unless owned is false. The library cannot set table
// flags nor add a message of ours to its batch, so the batch is made
// here; the rule's expressions are marshalled by the library's expr.
func (g *Guard) create(owned bool) error {
	g.owned = owned
	if err := g.step(stepCreate); err != nil {
		return err
	}
	msgs, err := g.createMessages(owned)
	if err != nil {
		return fmt.Errorf("creating table inet %s: %w", g.table, err)
	}
	failed, err := g.sendBatch(msgs)
	if err != nil {
		what := "creating table inet " + g.table
		if failed > 0 {
			what = "adding the guard chain and rule to table inet " + g.table
		}
		return netlinkError(what, err)
	}
	return g.step(stepCreateDone)
}

// createMessages are NFT_MSG_NEWTABLE (NFT_TABLE_F_OWNER and the comment
// as its user data when owned), NFT_MSG_NEWCHAIN for the base chain on
// the input hook, and one NFT_MSG_NEWRULE per address, as
// github.com/google/nftables would make them (AddChain, AddRule) but for
// the acknowledgement and the echo of the rule, which nothing here reads.
// The table and the chain are new (NLM_F_EXCL): a name already taken
// fails with EEXIST instead of adding to another's table.
func (g *Guard) createMessages(owned bool) ([]netlink.Message, error) {
	tableAttrs := []netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: cString(g.table)},
		{Type: unix.NFTA_TABLE_FLAGS, Data: binaryutil.BigEndian.PutUint32(0)},
	}
	if owned {
		tableAttrs[1].Data = binaryutil.BigEndian.PutUint32(nftTableFOwner)
		tableAttrs = append(tableAttrs, netlink.Attribute{Type: nftaTableUserdata, Data: userdata.AppendString(nil, userdata.TypeComment, g.comment)})
	}
	table, err := netlink.MarshalAttributes(tableAttrs)
	if err != nil {
		return nil, err
	}
	hook, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_HOOK_HOOKNUM, Data: binaryutil.BigEndian.PutUint32(uint32(*nftables.ChainHookInput))},
		{Type: unix.NFTA_HOOK_PRIORITY, Data: binaryutil.BigEndian.PutUint32(uint32(*nftables.ChainPriorityFilter))},
	})
	if err != nil {
		return nil, err
	}
	chain, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_CHAIN_TABLE, Data: cString(g.table)},
		{Type: unix.NFTA_CHAIN_NAME, Data: cString(ChainName)},
		{Type: unix.NLA_F_NESTED | unix.NFTA_CHAIN_HOOK, Data: hook},
		{Type: unix.NFTA_CHAIN_POLICY, Data: binaryutil.BigEndian.PutUint32(uint32(nftables.ChainPolicyAccept))},
		{Type: unix.NFTA_CHAIN_TYPE, Data: cString(string(nftables.ChainTypeFilter))},
	})
	if err != nil {
		return nil, err
	}
	msgs := []netlink.Message{
		nftMessage(unix.NFT_MSG_NEWTABLE, netlink.Create|netlink.Excl, table),
		nftMessage(unix.NFT_MSG_NEWCHAIN, netlink.Create|netlink.Excl, chain),
	}
	for _, a := range g.scope.Addrs {
		var elems []netlink.Attribute
		for _, e := range ruleExprs(a, g.scope.PortLow, g.scope.PortHigh) {
			b, err := expr.Marshal(byte(nftables.TableFamilyINet), e)
			if err != nil {
				return nil, err
			}
			elems = append(elems, netlink.Attribute{Type: unix.NLA_F_NESTED | unix.NFTA_LIST_ELEM, Data: b})
		}
		list, err := netlink.MarshalAttributes(elems)
		if err != nil {
			return nil, err
		}
		rule, err := netlink.MarshalAttributes([]netlink.Attribute{
			{Type: unix.NFTA_RULE_TABLE, Data: cString(g.table)},
			{Type: unix.NFTA_RULE_CHAIN, Data: cString(ChainName)},
			{Type: unix.NLA_F_NESTED | unix.NFTA_RULE_EXPRESSIONS, Data: list},
			{Type: unix.NFTA_RULE_USERDATA, Data: userdata.AppendString(nil, userdata.TypeComment, g.comment)},
		})
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, nftMessage(unix.NFT_MSG_NEWRULE, netlink.Create|netlink.HeaderFlags(unix.NLM_F_APPEND), rule))
	}
	return msgs, nil
}

// nftMessage is one nf_tables message of a batch, in the inet family.
func nftMessage(typ uint16, flags netlink.HeaderFlags, attrs []byte) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | typ),
			Flags: netlink.Request | flags,
		},
		Data: append(nfgenmsg(unix.NFPROTO_INET, 0), attrs...),
	}
}

// sendBatch sends msgs as one nfnetlink batch, the last of them asking
// for an acknowledgement, and reads the answers until that one (or an
// error about the whole batch) has come. It returns the first error the
// kernel reported and the index in msgs of the message it was about (-1
// for the batch as a whole). The kernel reports every message's error
// after the whole batch, in order (nfnetlink_rcv_batch), so the first is
// the cause and the ones after it (a chain whose table failed) follow
// from it.
func (g *Guard) sendBatch(msgs []netlink.Message) (failed int, err error) {
	msgs[len(msgs)-1].Header.Flags |= netlink.Acknowledge
	batch := append([]netlink.Message{batchMessage(unix.NFNL_MSG_BATCH_BEGIN)}, msgs...)
	batch = append(batch, batchMessage(unix.NFNL_MSG_BATCH_END))
	sent, err := g.raw.SendMessages(batch)
	if err != nil {
		return -1, err
	}
	begin, last := sent[0].Header.Sequence, sent[len(sent)-2].Header.Sequence
	rc, err := g.raw.SyscallConn()
	if err != nil {
		return -1, err
	}
	buf := make([]byte, 16<<10)
	failed = -1
	var first error
	waiting := false
	for {
		var n int
		var rerr error
		// The kernel handles the batch in sendmsg, so its answers are
		// queued before that returns: a receive finds them. Only if it
		// does not is a deadline set (poll.FD.RawRead honours it) and
		// the poller waited on; setting one every time would cost a
		// wake-up of the poller's thread (a timer change) for nothing.
		if err := rc.Read(func(fd uintptr) bool {
			n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT)
			return (rerr != unix.EAGAIN || !waiting) && rerr != unix.EINTR
		}); err != nil {
			return -1, err
		}
		if rerr == unix.EAGAIN && !waiting {
			if err := g.raw.SetReadDeadline(time.Now().Add(netlinkTimeout)); err != nil {
				return -1, fmt.Errorf("netlink deadline: %w", err)
			}
			waiting = true
			continue
		}
		if rerr != nil {
			return -1, &netlink.OpError{Op: "receive", Err: rerr}
		}
		replies, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return -1, fmt.Errorf("parsing the kernel's answer: %w", err)
		}
		for _, m := range replies {
			// Sequence numbers may wrap: compared as offsets from begin.
			off := m.Header.Seq - begin
			if m.Header.Type != unix.NLMSG_ERROR || off > last-begin || len(m.Data) < 4 {
				continue
			}
			if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code != 0 && first == nil {
				failed, first = int(off)-1, &netlink.OpError{Op: "receive", Err: unix.Errno(-code)}
			}
			if m.Header.Seq == last || off == 0 {
				return failed, first
			}
		}
	}
}

// cString is s as a netlink string attribute: NUL-terminated.
func cString(s string) []byte { return append([]byte(s), 0) }

// batchMessage is the start or end of an nfnetlink batch for nf_tables.
func batchMessage(typ uint16) netlink.Message {
	return netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(typ), Flags: netlink.Request},
		Data:   nfgenmsg(unix.AF_UNSPEC, unix.NFNL_SUBSYS_NFTABLES),
	}
}

// nfgenmsg is struct nfgenmsg: family, version, resource id (big endian).
func nfgenmsg(family uint8, resID uint16) []byte {
	return append([]byte{family, unix.NFNETLINK_V0}, binaryutil.BigEndian.PutUint16(resID)...)
}

// Local is the address and port the guard protects, as Install read it
// (the zero address: both families); for a Scope, its first address and
// lowest port.
func (g *Guard) Local() netip.AddrPort {
	return netip.AddrPortFrom(g.scope.Addrs[0], g.scope.PortLow)
}

// Scope is what the guard protects.
func (g *Guard) Scope() Scope {
	s := g.scope
	s.Addrs = slices.Clone(s.Addrs)
	return s
}

// Comment is the comment on the table and the rule, e.g. "tcpcraft pid=42
// start=1234 guard 10.0.2.21:40000".
func (g *Guard) Comment() string { return g.comment }

// Table is the name of the guard's table (family inet), e.g.
// "tcpcraft-42-9f3a1c07": `nft list table inet NAME` shows it.
func (g *Guard) Table() string { return g.table }

// Owned reports whether the table belongs to the guard's socket (and so
// goes with the process whatever happens).
func (g *Guard) Owned() bool { return g.owned }

// Rule is the guard's rule as an nft command line, for display; a guard
// of several addresses has one rule each, on lines of their own.
func (g *Guard) Rule() string {
	var lines []string
	for _, m := range g.matches {
		lines = append(lines, fmt.Sprintf("nft add rule inet %s %s %s drop comment %s", g.table, ChainName, m, strconv.Quote(g.comment)))
	}
	return strings.Join(lines, "\n")
}

// Remove deletes the guard's table, with its chain and rule, in one step,
// from the namespace it was installed in whatever thread calls it. It is
// idempotent: a table already gone is not an error. Cancellation of ctx is
// ignored on purpose — Remove runs on the way out of a cancelled run, and
// a leftover rule silently breaks later runs — each exchange with the
// kernel is bounded by a timeout instead.
//
// After the deletion the socket is closed, and with it the kernel deletes
// an owned table in any case, so for an owned guard a failed deletion is
// not an error. An unowned guard whose deletion failed keeps its socket,
// and Remove may be called again.
func (g *Guard) Remove(ctx context.Context) error {
	_ = ctx
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.removed {
		return nil
	}
	var delErr error
	if !g.deleted {
		delErr = g.delete()
	}
	if delErr != nil && isNotFound(delErr) {
		delErr = nil // removed already (CleanupStale, or by hand)
	}
	if delErr != nil && !g.owned {
		// The socket stays open so that a later Remove can try again.
		return fmt.Errorf("removing the RST guard (table inet %s, %s): %w", g.table, g.comment, delErr)
	}
	if err := g.closeSocket(); err != nil {
		return fmt.Errorf("removing the RST guard (table inet %s, %s): closing its socket: %w", g.table, g.comment, err)
	}
	g.removed = true
	return nil
}

// Delete deletes the guard's table now and leaves its socket open for
// Remove, which then only closes it. It is Remove's first half, for a
// caller with other waits of its own ahead: the kernel frees a deleted
// table's objects in a worker, after an RCU grace period, and closing the
// socket waits for that worker (nf_tables' netlink notifier flushes it,
// net/netfilter/nf_tables_api.c). Deleted first, the table's grace period
// passes while the caller does the rest (closing packet sockets, which
// wait for grace periods of their own), and Remove then finds it done.
// A deletion that fails is tried again, and reported, by Remove; Delete
// never loosens the guard's hold (the socket, and with it the ownership
// of the table, stay until Remove).
func (g *Guard) Delete() {
	if g == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.removed || g.deleted {
		return
	}
	if err := g.delete(); err == nil || isNotFound(err) {
		g.deleted = true
	}
}

// SyscallConn gives access to the guard's netlink socket, for package
// release: closing it after a Delete waits for the kernel's worker to
// free the table. nil once the guard is removed.
func (g *Guard) SyscallConn() syscall.RawConn {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.raw == nil {
		return nil
	}
	rc, err := g.raw.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// delete deletes the table through the guard's own socket.
func (g *Guard) delete() error {
	if g.conn == nil {
		return nil
	}
	if err := g.step(stepDelete); err != nil {
		return err
	}
	// NFT_MSG_DELTABLE as the library's DelTable makes it, in a batch
	// of its own: one sendmsg, one answer (sendBatch).
	attrs, err := netlink.MarshalAttributes([]netlink.Attribute{
		{Type: unix.NFTA_TABLE_NAME, Data: cString(g.table)},
		{Type: unix.NFTA_TABLE_FLAGS, Data: binaryutil.BigEndian.PutUint32(0)},
	})
	if err != nil {
		return fmt.Errorf("deleting table inet %s: %w", g.table, err)
	}
	if _, err := g.sendBatch([]netlink.Message{nftMessage(unix.NFT_MSG_DELTABLE, 0, attrs)}); err != nil {
		return netlinkError("deleting table inet "+g.table, err)
	}
	return nil
}

// closeSocket closes the guard's netlink socket (once).
func (g *Guard) closeSocket() error {
	if g.conn == nil {
		return nil
	}
	err := g.conn.CloseLasting()
	g.conn, g.raw = nil, nil
	return err
}

// abandon undoes a failed Install: the table goes if it was made, and the
// socket is closed (which takes an owned table with it).
func (g *Guard) abandon() {
	if g.table != "" {
		_ = g.delete()
	}
	_ = g.closeSocket()
}

func (f Firewall) step(name string) error {
	if f.fail == nil {
		return nil
	}
	return f.fail(name)
}

func (g *Guard) step(name string) error {
	if g.fail == nil {
		return nil
	}
	return g.fail(name)
}

// tableName is tcpcraft-PID-RANDOM: the pid tells a human whose it is
// (the comment says more), the random part keeps the guards of one process
// apart.
func tableName(pid int) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("naming the table: %w", err)
	}
	return fmt.Sprintf("%s%d-%s", TablePrefix, pid, hex.EncodeToString(b[:])), nil
}

// describe is what a guard protects, for its comment and errors:
// "10.0.2.21:40000", "[fd00:2::21]:80", "0.0.0.0:80" (every IPv4 address),
// "[::]:80" (every IPv6 address) or "*:80" (both families).
func describe(local netip.AddrPort) string {
	return describeAddr(local.Addr(), strconv.Itoa(int(local.Port())))
}

func describeAddr(addr netip.Addr, ports string) string {
	if !addr.IsValid() {
		return "*:" + ports
	}
	if addr.Is6() {
		return "[" + addr.String() + "]:" + ports
	}
	return addr.String() + ":" + ports
}

// describeScope is describe for a Scope: each address with the port or
// the range, "10.0.2.21:40000-40063,[fd00:2::21]:40000-40063".
func describeScope(s Scope) string {
	ports := portsText(s.PortLow, s.PortHigh)
	var parts []string
	for _, a := range s.Addrs {
		parts = append(parts, describeAddr(a, ports))
	}
	return strings.Join(parts, ",")
}

// portsText is "40000" or "40000-40063".
func portsText(low, high uint16) string {
	if low == high {
		return strconv.Itoa(int(low))
	}
	return strconv.Itoa(int(low)) + "-" + strconv.Itoa(int(high))
}

// ruleMatch is a rule's match in nft's syntax, as `nft list` prints it.
func ruleMatch(addr netip.Addr, low, high uint16) string {
	var b strings.Builder
	switch {
	case !addr.IsValid():
	case addr.IsUnspecified() && addr.Is4():
		b.WriteString("meta nfproto ipv4 ")
	case addr.IsUnspecified():
		b.WriteString("meta nfproto ipv6 ")
	case addr.Is4():
		b.WriteString("ip daddr " + addr.String() + " ")
	default:
		b.WriteString("ip6 daddr " + addr.String() + " ")
	}
	b.WriteString("tcp dport " + portsText(low, high))
	return b.String()
}

// ruleExprs is a rule's match and verdict as nf_tables expressions, in
// the order nft itself generates them for ruleMatch (so `nft list` prints
// the rule that way): the family, the destination address, TCP, the
// destination port or port range (RFC 9293 §3.1: bytes 2-3 of the TCP
// header), drop. meta l4proto follows IPv6 extension headers to the
// transport header, and a transport-header load does not match a
// non-first fragment, so only real TCP segments to the ports are dropped.
func ruleExprs(addr netip.Addr, low, high uint16) []expr.Any {
	var exprs []expr.Any
	cmp := func(data []byte) expr.Any {
		return &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: data}
	}
	if addr.IsValid() {
		family := byte(unix.NFPROTO_IPV4)
		if addr.Is6() {
			family = unix.NFPROTO_IPV6
		}
		exprs = append(exprs, &expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1}, cmp([]byte{family}))
		if !addr.IsUnspecified() {
			// Destination address: bytes 16-19 of the IPv4 header
			// (RFC 791 §3.1), 24-39 of the IPv6 header (RFC 8200 §3).
			off, data := uint32(16), addr.AsSlice()
			if addr.Is6() {
				off = 24
			}
			exprs = append(exprs,
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: uint32(len(data))},
				cmp(data))
		}
	}
	exprs = append(exprs,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, cmp([]byte{unix.IPPROTO_TCP}),
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2})
	if low == high {
		exprs = append(exprs, cmp(binaryutil.BigEndian.PutUint16(low)))
	} else {
		exprs = append(exprs, &expr.Range{Op: expr.CmpOpEq, Register: 1,
			FromData: binaryutil.BigEndian.PutUint16(low), ToData: binaryutil.BigEndian.PutUint16(high)})
	}
	return append(exprs, &expr.Verdict{Kind: expr.VerdictDrop})
}

// netlinkError adds what was attempted to a netlink error, and says what
// to do about the usual ones.
func netlinkError(what string, err error) error {
	switch {
	case errors.Is(err, unix.EPERM) || errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%s: needs root or CAP_NET_ADMIN: %w", what, err)
	case errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EAFNOSUPPORT):
		return fmt.Errorf("%s: this kernel has no nf_tables (CONFIG_NF_TABLES, module nf_tables): %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// isNotFound reports whether err says the table (or its chain) is gone.
func isNotFound(err error) bool {
	return errors.Is(err, unix.ENOENT)
}

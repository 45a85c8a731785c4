package cmd

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/urfave/cli/v3"

	"github.com/tcpcraft/tcpcraft/lab"
)

// Flag names (and the environment variables scripts/lab.sh reads too) that
// override the lab's names and addresses.
const (
	flagClientNS   = "client-ns"
	flagServerNS   = "server-ns"
	flagClientIf   = "client-if"
	flagServerIf   = "server-if"
	flagClientAddr = "client-addr"
	flagServerAddr = "server-addr"
	flagClientIP6  = "client-addr6"
	flagServerIP6  = "server-addr6"
)

// labCommand is "tcpcraft lab up|down|status|demo".
func labCommand() *cli.Command {
	return withExamples(&cli.Command{
		Name:  "lab",
		Usage: "build, inspect or remove the two-namespace lab (client 10.0.2.21 and fd00:2::21, server 10.0.2.20 and fd00:2::20) with kernel peers",
		Description: "The lab is two network namespaces joined by a veth pair: the client namespace\n" +
			"(tcpcraft-client, 10.0.2.21/24 and fd00:2::21/64 on tcv-client) and the server namespace\n" +
			"(tcpcraft-server, 10.0.2.20/24 and fd00:2::20/64 on tcv-server). The IPv6 addresses skip\n" +
			"duplicate address detection (nodad), so they work at once; --client-addr6 '' --server-addr6 ''\n" +
			"make an IPv4-only lab. Nothing is added to the host's own network namespace.\n" +
			"Run kernel peers inside with 'ip netns exec tcpcraft-server ...'.",
		Commands: []*cli.Command{
			withExamples(&cli.Command{
				Name:   "up",
				Usage:  "create the lab, or repair it; running it again changes nothing",
				Flags:  labFlags(),
				Action: labUp,
			},
				example{"the lab with its usual names and addresses", "sudo tcpcraft lab up"},
				example{"a second lab beside it", "sudo tcpcraft lab up --client-ns c2 --server-ns s2 --client-if c2 --server-if s2"},
			),
			withExamples(&cli.Command{
				Name:   "down",
				Usage:  "remove the lab's namespaces (the veth pair and addresses go with them); nothing to do is not an error",
				Flags:  labFlags(),
				Action: labDown,
			},
				example{"remove the lab", "sudo tcpcraft lab down"},
			),
			withExamples(&cli.Command{
				Name:   "status",
				Usage:  "show what exists of the lab; exits 0 whether it is up, down or partial (read the last line)",
				Flags:  labFlags(),
				Action: labStatus,
			},
				example{"is the lab up?", "sudo tcpcraft lab status | tail -1"},
			),
			withExamples(&cli.Command{
				Name:   "demo",
				Usage:  "bring the lab up, start a kernel web server and show tcpcraft talking to it",
				Flags:  labFlags(),
				Action: labDemo,
			},
				example{"a first look at tcpcraft", "sudo tcpcraft lab demo"},
			),
		},
	},
		example{"build the lab, talk to a kernel server in it, take it down", "sudo tcpcraft lab up"},
		example{"", "sudo ip netns exec tcpcraft-server socat TCP-LISTEN:7,fork EXEC:cat &"},
		example{"", "echo hi | sudo ip netns exec tcpcraft-client tcpcraft connect 10.0.2.20:7"},
		example{"", "sudo tcpcraft lab down"},
	)
}

// labFlags override lab.DefaultConfig; each can also come from the
// environment, with the names scripts/lab.sh uses.
func labFlags() []cli.Flag {
	d := lab.DefaultConfig()
	return []cli.Flag{
		&cli.StringFlag{Name: flagClientNS, Value: d.ClientNS, Sources: cli.EnvVars("TCPCRAFT_CLIENT_NS"), Usage: "client network namespace"},
		&cli.StringFlag{Name: flagServerNS, Value: d.ServerNS, Sources: cli.EnvVars("TCPCRAFT_SERVER_NS"), Usage: "server network namespace"},
		&cli.StringFlag{Name: flagClientIf, Value: d.ClientIf, Sources: cli.EnvVars("TCPCRAFT_CLIENT_IF"), Usage: "client end of the veth pair (at most 15 bytes)"},
		&cli.StringFlag{Name: flagServerIf, Value: d.ServerIf, Sources: cli.EnvVars("TCPCRAFT_SERVER_IF"), Usage: "server end of the veth pair (at most 15 bytes)"},
		&cli.StringFlag{Name: flagClientAddr, Value: d.ClientAddr.String(), Sources: cli.EnvVars("TCPCRAFT_CLIENT_ADDR"), Usage: "client address with prefix length"},
		&cli.StringFlag{Name: flagServerAddr, Value: d.ServerAddr.String(), Sources: cli.EnvVars("TCPCRAFT_SERVER_ADDR"), Usage: "server address with prefix length"},
		&cli.StringFlag{Name: flagClientIP6, Value: d.ClientAddr6.String(), Sources: cli.EnvVars("TCPCRAFT_CLIENT_ADDR6"), Usage: "client IPv6 address with prefix length ('' with --server-addr6 '': none)"},
		&cli.StringFlag{Name: flagServerIP6, Value: d.ServerAddr6.String(), Sources: cli.EnvVars("TCPCRAFT_SERVER_ADDR6"), Usage: "server IPv6 address with prefix length"},
	}
}

// labConfig reads the lab flags; a bad value is a usage error.
func labConfig(c *cli.Command) (lab.Config, error) {
	if err := noArgs(c); err != nil {
		return lab.Config{}, err
	}
	cfg := lab.Config{
		ClientNS: flagString(c, flagClientNS),
		ServerNS: flagString(c, flagServerNS),
		ClientIf: flagString(c, flagClientIf),
		ServerIf: flagString(c, flagServerIf),
	}
	for _, a := range []struct {
		flag string
		dst  *netip.Prefix
	}{{flagClientAddr, &cfg.ClientAddr}, {flagServerAddr, &cfg.ServerAddr}} {
		p, err := netip.ParsePrefix(flagString(c, a.flag))
		if err != nil {
			return lab.Config{}, usagef("--%s: want an address with prefix length like 10.0.2.21/24: %v", a.flag, err)
		}
		*a.dst = p
	}
	for _, a := range []struct {
		flag string
		dst  *netip.Prefix
	}{{flagClientIP6, &cfg.ClientAddr6}, {flagServerIP6, &cfg.ServerAddr6}} {
		if flagString(c, a.flag) == "" {
			continue // no IPv6 on this side: Validate wants both or neither
		}
		p, err := netip.ParsePrefix(flagString(c, a.flag))
		if err != nil {
			return lab.Config{}, usagef("--%s: want an IPv6 address with prefix length like fd00:2::21/64: %v", a.flag, err)
		}
		*a.dst = p
	}
	if err := cfg.Validate(); err != nil {
		return lab.Config{}, exitUsage(err)
	}
	return cfg, nil
}

func labUp(ctx context.Context, c *cli.Command) error {
	cfg, err := labConfig(c)
	if err != nil {
		return err
	}
	l, err := lab.Up(ctx, cfg)
	if err != nil {
		return exitFailure(err)
	}
	w := stdout(c)
	for _, change := range l.Changes {
		fmt.Fprintln(w, change)
	}
	if len(l.Changes) == 0 {
		fmt.Fprintln(w, "nothing to change")
	}
	fmt.Fprintf(w, "lab is up: client %s in namespace %s (%s) <-> server %s in namespace %s (%s)\n",
		labAddrs(l.ClientAddr, l.ClientAddr6), l.ClientNS, l.ClientIf, labAddrs(l.ServerAddr, l.ServerAddr6), l.ServerNS, l.ServerIf)
	return nil
}

// labAddrs shows one side's addresses: "10.0.2.21/24 fd00:2::21/64".
func labAddrs(v4, v6 netip.Prefix) string {
	if !v6.IsValid() {
		return v4.String()
	}
	return v4.String() + " " + v6.String()
}

func labDown(ctx context.Context, c *cli.Command) error {
	cfg, err := labConfig(c)
	if err != nil {
		return err
	}
	before, err := lab.Status(ctx, cfg)
	if err != nil {
		return exitFailure(err)
	}
	if err := lab.Down(ctx, cfg); err != nil {
		return exitFailure(err)
	}
	w := stdout(c)
	removed := false
	for _, side := range []lab.Side{before.Client, before.Server} {
		if side.NamespaceExists {
			fmt.Fprintf(w, "removed namespace %s\n", side.Namespace)
			removed = true
		}
	}
	if !removed {
		fmt.Fprintln(w, "nothing to remove")
	}
	fmt.Fprintln(w, "lab is down")
	return nil
}

func labStatus(ctx context.Context, c *cli.Command) error {
	cfg, err := labConfig(c)
	if err != nil {
		return err
	}
	st, err := lab.Status(ctx, cfg)
	if err != nil {
		return exitFailure(err)
	}
	fmt.Fprint(stdout(c), st)
	return nil
}

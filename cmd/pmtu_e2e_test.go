package cmd

// Path MTU discovery end to end (RFC 1191, RFC 8201): client — router —
// server, the router's link towards the server narrower (1400 bytes) than
// the links at either end (1500), so neither end's MSS tells of it. The
// router drops tcpcraft's full-size segments and answers with ICMP
// "fragmentation needed" or ICMPv6 "packet too big"; tcpcraft must lower
// its MSS, send the dropped data again, and finish the transfer.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

const pmtuFarMTU = 1400

func TestPathMTUDiscoveryRouted(t *testing.T) {
	t.Parallel()
	rl := newRoutedLabMTU(t, pmtuFarMTU)
	data := randomBytes(t, 1<<20)
	for _, fam := range []struct {
		name           string
		server, client string
		mss            int // what the trace must show
	}{
		{"IPv4", "10.9.2.20", "10.0.2.21", pmtuFarMTU - 40},
		{"IPv6", "fd00:9:2::20", "fd00:2::21", pmtuFarMTU - 60},
	} {
		t.Run(fam.name+"/connect", func(t *testing.T) {
			// Upload through connect to a kernel sink behind the router.
			ln, err := rl.Listen(rl.ServerNS, "tcp", net.JoinHostPort(fam.server, "7100"))
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := make(chan []byte, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- nil
					return
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(processTimeout))
				b, _ := io.ReadAll(c)
				got <- b
			}()
			r := rl.tcpcraft(t, bytes.NewReader(data), "connect", "--time-wait", "100ms", net.JoinHostPort(fam.server, "7100"))
			expectExit(t, r, 0)
			if b := receive(t, got, "the kernel sink"); !bytes.Equal(b, data) {
				t.Fatalf("the sink got %d bytes, not the %d sent", len(b), len(data))
			}
			if want := fmt.Sprintf("path MTU: send MSS now %d", fam.mss); !strings.Contains(r.stderr, want) {
				t.Errorf("the trace does not say %q:\n%s", want, tail(r.stderr, 3000))
			}
		})
		t.Run(fam.name+"/listen", func(t *testing.T) {
			// Download from listen by a kernel client behind the router.
			// tcpcraft in the client namespace, the client behind the router.
			p := rl.start(t, rl.ClientNS, bytes.NewReader(data), rl.bin, "listen", "--time-wait", "100ms", ":7200")
			waitListening(t, p)
			ctx, cancel := context.WithTimeout(context.Background(), processTimeout)
			defer cancel()
			conn, err := rl.Dial(ctx, rl.ServerNS, "tcp", net.JoinHostPort(fam.client, "7200"))
			if err != nil {
				t.Fatal(err)
			}
			_ = conn.SetDeadline(time.Now().Add(processTimeout))
			b, err := io.ReadAll(conn)
			conn.Close()
			if err != nil || !bytes.Equal(b, data) {
				t.Fatalf("the kernel client got %d bytes (%v), not the %d sent", len(b), err, len(data))
			}
			r := p.wait(t)
			expectExit(t, r, 0)
			if want := fmt.Sprintf("path MTU: send MSS now %d", fam.mss); !strings.Contains(r.stderr, want) {
				t.Errorf("the trace does not say %q:\n%s", want, tail(r.stderr, 3000))
			}
		})
	}
}

package fsm_test

// Regression test for two receive-window bugs found by the stack tests: the
// right edge crept past the buffer by up to 2^shift-1 bytes per ACK while the
// buffer was full (rounding the scaled window up), and a passive open whose
// peer ISN lay more than 2^31 from zero never recorded its first advertised
// edge, so it advertised 65535<<shift.

import (
	"testing"
	"time"

	"github.com/tcpcraft/tcpcraft/craft"
	"github.com/tcpcraft/tcpcraft/fsm"
)

func TestAdvertisedEdgeNeverPassesBuffer(t *testing.T) {
	for _, iss := range []craft.Seq{0x10000000, 0x90000000} {
		now := time.Unix(1000, 0)
		cfg := fsm.DefaultConfig()
		cfg.RecvBufferSize = 16 << 10
		cfg.DelayedACK = 0
		ccfg := cfg
		ccfg.LocalPort, ccfg.RemotePort = 40000, 80
		ccfg.ISS, ccfg.FixedISS = iss, true
		scfg := cfg
		scfg.LocalPort, scfg.RemotePort = 80, 40000
		client, _ := fsm.NewConn(ccfg)
		server, _ := fsm.NewConn(scfg)
		_ = server.Listen()
		_ = client.Connect(now)
		shuttle := func() {
			for moved := true; moved; {
				moved = false
				for _, s := range client.Output() {
					server.Input(&s, now)
					moved = true
				}
				for _, s := range server.Output() {
					if !s.Flags.Has(craft.FlagSYN) {
						edge := int64(s.Ack.Diff(iss+1)) + int64(s.Window)<<7
						if edge > 16<<10 {
							t.Errorf("client ISS %#x: server ACK %d window %d<<7: right edge %d beyond its 16384-byte buffer",
								uint32(iss), s.Ack.Diff(iss+1), s.Window, edge)
						}
					}
					client.Input(&s, now)
					moved = true
				}
			}
		}
		shuttle()
		_, _ = client.Write(make([]byte, 64<<10), now) // the server application never reads
		shuttle()
	}
}

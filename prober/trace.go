package prober

import (
	"context"
	"time"
)

// maxTTL is the traceroute's last TTL.
func (c *Config) maxTTL() int {
	if c.MaxTTL == 0 {
		return DefaultMaxTTL
	}
	return c.MaxTTL
}

// traceroute probes the one target with TTL 1, 2, ..., Count probes per
// TTL, each waited for in turn, until the target answers (with TCP, or
// with an ICMP error of its own) or a router says it cannot be reached,
// as tcptraceroute and hping3 --traceroute do. The hops are in r.hops.
func (r *run) traceroute(ctx context.Context) error {
	r.hopAns = map[uint32]hopAnswer{}
	target := r.s.targets[0]
	for ttl := 1; ttl <= r.cfg.maxTTL(); ttl++ {
		hop := Hop{TTL: uint8(ttl)}
		answered := false
		var first hopAnswer
		for range r.cfg.Count {
			num := r.num
			if err := r.probe(0, uint8(ttl)); err != nil {
				return err
			}
			if err := r.flush(); err != nil {
				return err
			}
			end := time.Now().Add(r.waitFor())
			for {
				r.drain()
				if r.sendErr != nil {
					return r.sendErr
				}
				if a, ok := r.hopAns[num]; ok {
					if !answered {
						hop.Addr, hop.RTT, answered, first = a.from, a.rtt, true, a
						if a.icmp != nil {
							hop.ICMP = a.icmp.Name()
						}
					}
					break
				}
				if ctx.Err() != nil {
					r.hops = append(r.hops, hop)
					return ctx.Err()
				}
				now := time.Now()
				if !now.Before(end) {
					r.expire(now)
					break
				}
				r.waitUntil(ctx, end)
			}
		}
		// The end of the path: the target itself answered, or an
		// unreachable error (from anyone) says there is no going on.
		if answered {
			reached := hop.Addr == target.Addr || r.tgt[0].tcpSettled
			unreach := first.icmp != nil && first.icmp.TypeName() == "unreachable"
			if reached || unreach {
				hop.Final = true
				hop.State, hop.Reason = stateOf(&r.tgt[0], r.kind)
			}
		}
		r.hops = append(r.hops, hop)
		if r.wants(EventHop) {
			h := hop
			r.ev.Time, r.ev.Target, r.ev.Hop = time.Now(), target, &h
			r.emit(EventHop)
		}
		if hop.Final {
			return nil
		}
	}
	return nil
}

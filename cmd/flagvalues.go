package cmd

import (
	"time"

	"github.com/urfave/cli/v3"
)

// The flag readers below stand in for cli.Command's Bool, String, Int,
// Duration, Float64, StringSlice and IsSet, with the same answers (a
// flag's Get, or the zero value for a name no flag has).
//
// Why: urfave/cli finds a flag by walking the command's flags and then its
// ancestors', making each flag's list of names anew on the way: 2.2 µs and
// 29 allocations a lookup (measured with a benchmark of the connect
// command's flags), and a `connect` run reads its flags 46 times, some
// twice (the checks before anything changes, then the session's set-up):
// 1,300 allocations, and 0.3 ms of a run that takes 4 with what they cost
// later (docs/PERFORMANCE.md, "Flag look-ups"). Here each command's flags
// are indexed by name once, in urfave/cli's order (the command's own
// first, the first of a name winning), and kept in its Metadata.

// flagIndexKey is the Metadata key of a command's flag index.
const flagIndexKey = "tcpcraft-flag-index"

// flagNamed is the flag c reads by name, or nil.
func flagNamed(c *cli.Command, name string) cli.Flag {
	index, _ := c.Metadata[flagIndexKey].(map[string]cli.Flag)
	if index == nil {
		index = map[string]cli.Flag{}
		for _, cmd := range c.Lineage() {
			for _, f := range cmd.Flags {
				for _, n := range f.Names() {
					if _, taken := index[n]; !taken {
						index[n] = f
					}
				}
			}
		}
		if c.Metadata == nil {
			c.Metadata = map[string]any{}
		}
		c.Metadata[flagIndexKey] = index
	}
	return index[name]
}

func flagValue(c *cli.Command, name string) any {
	if f := flagNamed(c, name); f != nil {
		return f.Get()
	}
	return nil
}

func flagIsSet(c *cli.Command, name string) bool {
	f := flagNamed(c, name)
	return f != nil && f.IsSet()
}

func flagBool(c *cli.Command, name string) bool {
	v, _ := flagValue(c, name).(bool)
	return v
}

func flagString(c *cli.Command, name string) string {
	v, _ := flagValue(c, name).(string)
	return v
}

func flagInt(c *cli.Command, name string) int {
	v, _ := flagValue(c, name).(int)
	return v
}

func flagDuration(c *cli.Command, name string) time.Duration {
	v, _ := flagValue(c, name).(time.Duration)
	return v
}

func flagFloat64(c *cli.Command, name string) float64 {
	v, _ := flagValue(c, name).(float64)
	return v
}

func flagStringSlice(c *cli.Command, name string) []string {
	v, _ := flagValue(c, name).([]string)
	return v
}

package cmd

// The flag types of every command, and how help shows a flag. Each type
// checks its value when the command line is parsed, so every command
// rejects a bad value the same way, before its action runs and before
// anything on the system changes: "--ttl 0: must be 1 to 255", a usage
// error (exit 2).

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v3"
)

// durationFlag is a flag holding a time: a bare number is seconds (as nc,
// ping and timeout read theirs: "-w 2", "--interval 0.1"), and a number
// with a unit is a Go duration ("2s", "100ms", "1m30s"). Read it with
// cmd.Duration.
type durationFlag = cli.FlagBase[time.Duration, durationRules, durationValue]

// durationRules are the values a durationFlag accepts: never negative;
// zero only when allowed.
type durationRules struct {
	positive bool // zero is refused too
}

// durationValue implements cli.ValueCreator and cli.Value for durationFlag.
type durationValue struct {
	d     *time.Duration
	rules durationRules
}

func (durationValue) Create(v time.Duration, p *time.Duration, r durationRules) cli.Value {
	*p = v
	return &durationValue{d: p, rules: r}
}

func (durationValue) ToString(v time.Duration) string { return v.String() }

func (v *durationValue) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	if d == 0 && v.rules.positive {
		return errors.New("must be more than 0")
	}
	*v.d = d
	return nil
}

func (v *durationValue) Get() any { return *v.d }

func (v *durationValue) String() string {
	if v.d == nil {
		return ""
	}
	return v.d.String()
}

// parseDuration reads a duration flag's value: seconds as a decimal
// number, or a Go duration with units. Negative values are refused.
func parseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-") {
		return 0, errors.New("must not be negative")
	}
	t = strings.TrimPrefix(t, "+")
	if t == "" {
		return 0, errors.New("want a number of seconds (2, 0.5) or a duration with a unit (2s, 100ms)")
	}
	if strings.Trim(t, "0123456789.") == "" {
		secs, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return 0, errors.New("want a number of seconds (2, 0.5) or a duration with a unit (2s, 100ms)")
		}
		if secs*1e9 > math.MaxInt64 {
			return 0, errors.New("too long")
		}
		return time.Duration(math.Round(secs * 1e9)), nil
	}
	d, err := time.ParseDuration(t)
	switch {
	case err == nil:
		return d, nil
	case strings.Contains(err.Error(), "unknown unit"):
		return 0, errors.New("unknown unit (use ns, us, ms, s, m or h; a bare number is seconds)")
	}
	return 0, errors.New("want a number of seconds (2, 0.5) or a duration with a unit (2s, 100ms)")
}

// intFlag is an integer flag with the range it accepts. Read it with
// cmd.Int.
type intFlag = cli.FlagBase[int, intRange, intValue]

// intRange is the range an intFlag accepts; hint, when set, replaces the
// "must be MIN to MAX" message.
type intRange struct {
	min, max int
	hint     string
}

// intValue implements cli.ValueCreator and cli.Value for intFlag.
type intValue struct {
	n *int
	r intRange
}

func (intValue) Create(v int, p *int, r intRange) cli.Value {
	*p = v
	return &intValue{n: p, r: r}
}

func (intValue) ToString(v int) string { return strconv.Itoa(v) }

func (v *intValue) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 0, 64)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return v.r.refuse()
		}
		return errors.New("not a whole number")
	}
	if n < int64(v.r.min) || n > int64(v.r.max) {
		return v.r.refuse()
	}
	*v.n = int(n)
	return nil
}

func (r intRange) refuse() error {
	if r.hint != "" {
		return errors.New(r.hint)
	}
	return fmt.Errorf("must be %d to %d", r.min, r.max)
}

func (v *intValue) Get() any { return *v.n }

func (v *intValue) String() string {
	if v.n == nil {
		return ""
	}
	return strconv.Itoa(*v.n)
}

// seqNumberFlag is a flag holding a 32-bit sequence or acknowledgement
// number; whether it was given is cmd.IsSet.
func seqNumberFlag(name, usage, defaultText string) *intFlag {
	return &intFlag{Name: name, Usage: usage, DefaultText: defaultText,
		Config: intRange{min: 0, max: math.MaxUint32, hint: "must be a 32-bit number, 0 to 4294967295"}}
}

// choiceFlag is a string flag with a fixed set of values (matched without
// regard to case, and stored as listed). Read it with cmd.String.
type choiceFlag = cli.FlagBase[string, choices, choiceValue]

// choices are the values a choiceFlag accepts; aliases map other
// spellings to one of them.
type choices struct {
	values  []string
	aliases map[string]string
}

// choiceValue implements cli.ValueCreator and cli.Value for choiceFlag.
type choiceValue struct {
	s *string
	c choices
}

func (choiceValue) Create(v string, p *string, c choices) cli.Value {
	*p = v
	return &choiceValue{s: p, c: c}
}

func (choiceValue) ToString(v string) string { return v }

func (v *choiceValue) Set(s string) error {
	want := strings.ToLower(strings.TrimSpace(s))
	if a, ok := v.c.aliases[want]; ok {
		want = a
	}
	for _, c := range v.c.values {
		if strings.EqualFold(c, want) {
			*v.s = c
			return nil
		}
	}
	return fmt.Errorf("want %s", orList(v.c.values))
}

func (v *choiceValue) Get() any { return *v.s }

func (v *choiceValue) String() string {
	if v.s == nil {
		return ""
	}
	return *v.s
}

// orList writes "a, b or c".
func orList(words []string) string {
	switch len(words) {
	case 0:
		return ""
	case 1:
		return words[0]
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

// flagName is how a flag is written on the command line: "-w", "--timeout".
func flagName(name string) string {
	if len([]rune(name)) == 1 {
		return "-" + name
	}
	return "--" + name
}

// flagHelp is how help shows a flag: its names with the value's
// placeholder, its usage, and its default once, e.g.
//
//	--timeout DURATION, -w DURATION	give up ... (default: 10s)
//
// The placeholder is the word in backquotes in the usage, else one for
// the type (DURATION, N, VALUE). A default is shown when the flag has one
// worth showing: its DefaultText, else a value that is not zero or empty.
func flagHelp(f cli.Flag) string {
	df, ok := f.(cli.DocGenerationFlag)
	if !ok {
		return strings.Join(f.Names(), ", ")
	}
	placeholder, usage := splitPlaceholder(df.GetUsage())
	if cf, ok := f.(*choiceFlag); ok && placeholder == "" {
		placeholder = strings.Join(cf.Config.values, "|")
	}
	if df.TakesValue() && placeholder == "" {
		switch df.TypeName() {
		case "duration":
			placeholder = "DURATION"
		case "int", "uint", "float":
			placeholder = "N"
		default:
			placeholder = "VALUE"
		}
	}
	var names []string
	for _, n := range f.Names() {
		s := flagName(n)
		if placeholder != "" {
			s += " " + placeholder
		}
		names = append(names, s)
	}
	line := strings.Join(names, ", ") + "\t" + usage
	if def := flagDefault(df); def != "" {
		line += " (default: " + def + ")"
	}
	if env := df.GetEnvVars(); len(env) > 0 {
		line += " [$" + strings.Join(env, ", $") + "]"
	}
	return line
}

// flagDefault is the default help shows for a flag, or "".
func flagDefault(df cli.DocGenerationFlag) string {
	if !df.IsDefaultVisible() || !df.TakesValue() {
		return ""
	}
	if s := df.GetDefaultText(); s != "" {
		return s
	}
	v := df.GetValue()
	if u, err := strconv.Unquote(v); err == nil {
		v = u // a string flag's value comes quoted
	}
	switch v {
	case "", "0", "0s", "[]":
		return ""
	}
	return v
}

// splitPlaceholder returns the word in backquotes of a usage text (the
// value's placeholder) and the text without the backquotes.
func splitPlaceholder(usage string) (string, string) {
	i := strings.IndexByte(usage, '`')
	if i < 0 {
		return "", usage
	}
	j := strings.IndexByte(usage[i+1:], '`')
	if j < 0 {
		return "", usage
	}
	name := usage[i+1 : i+1+j]
	return name, usage[:i] + name + usage[i+2+j:]
}

// exclusive refuses two flags given together.
func exclusive(c *cli.Command, a, b string) error {
	if flagIsSet(c, a) && flagIsSet(c, b) {
		return usagef("give %s or %s, not both", flagNames(c, a), flagNames(c, b))
	}
	return nil
}

// flagNames writes a flag with its short alias, as help lists it:
// "--quiet (-q)".
func flagNames(c *cli.Command, name string) string {
	for _, f := range c.Flags {
		names := f.Names()
		if len(names) == 0 || names[0] != name {
			continue
		}
		s := flagName(name)
		for _, alias := range names[1:] {
			s += " (" + flagName(alias) + ")"
		}
		return s
	}
	return flagName(name)
}

package probe

import (
	"fmt"
	"strconv"
	"strings"
)

// Pos is a place in a script: 1-based line and column (in bytes).
type Pos struct {
	Line, Col int
}

func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// tokenKind classifies a token. Like packetdrill's lexer the language is
// free-form: newlines are white space, and an event ends where the next one
// (which always starts with a time) begins.
type tokenKind int

const (
	tokEOF      tokenKind = iota
	tokInt                // 12, -1, 0x1f
	tokFloat              // .1, 0.25
	tokWord               // socket, SOCK_STREAM, S, sackOK
	tokString             // "text" (value unquoted)
	tokCommand            // `shell command` (value without the backquotes)
	tokOption             // --name=value (text is the whole thing)
	tokEllipsis           // ...
	tokCode               // %{ python }% (not supported, but recognised)
	tokPunct              // one character: + * ~ < > . , : ( ) [ ] { } = | -
)

// token is one lexeme with its position.
type token struct {
	kind tokenKind
	pos  Pos
	text string // the source text (for strings and commands: the value)
	num  int64  // tokInt
}

// describe renders a token for "found ..." in error messages.
func (t token) describe() string {
	switch t.kind {
	case tokEOF:
		return "end of file"
	case tokInt, tokFloat:
		return "number " + t.text
	case tokWord:
		return fmt.Sprintf("%q", t.text)
	case tokString:
		return "string " + strconv.Quote(t.text)
	case tokCommand:
		return "command `" + truncate(t.text, 30) + "`"
	case tokOption:
		return "option " + t.text
	case tokEllipsis:
		return `"..."`
	case tokCode:
		return "code block %{...}%"
	}
	return fmt.Sprintf("%q", t.text)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// lexer turns script bytes into tokens on demand.
type lexer struct {
	src  []byte
	off  int
	line int
	col  int
	err  *SyntaxError // first lexical error, reported by the parser
	file string
	// defines are -D NAME=VALUE: the word NAME lexes as VALUE.
	defines map[string]string
}

func newLexer(file string, src []byte) *lexer {
	return &lexer{src: src, line: 1, col: 1, file: file}
}

func (l *lexer) peekByte(ahead int) byte {
	if l.off+ahead < len(l.src) {
		return l.src[l.off+ahead]
	}
	return 0
}

func (l *lexer) advance(n int) {
	for i := 0; i < n && l.off < len(l.src); i++ {
		if l.src[l.off] == '\n' {
			l.line++
			l.col = 1
		} else {
			l.col++
		}
		l.off++
	}
}

func (l *lexer) pos() Pos { return Pos{l.line, l.col} }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') }
func isWordCh(c byte) bool {
	return isDigit(c) || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// skipSpace skips white space and comments; an unterminated /* comment is
// an error at its start.
func (l *lexer) skipSpace() *SyntaxError {
	for l.off < len(l.src) {
		c := l.src[l.off]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			l.advance(1)
		case c == '/' && l.peekByte(1) == '/':
			for l.off < len(l.src) && l.src[l.off] != '\n' {
				l.advance(1)
			}
		case c == '/' && l.peekByte(1) == '*':
			start := l.pos()
			l.advance(2)
			for {
				if l.off >= len(l.src) {
					return l.errorf(start, "unterminated /* comment")
				}
				if l.src[l.off] == '*' && l.peekByte(1) == '/' {
					l.advance(2)
					break
				}
				l.advance(1)
			}
		default:
			return nil
		}
	}
	return nil
}

func (l *lexer) errorf(p Pos, format string, args ...any) *SyntaxError {
	return &SyntaxError{File: l.file, Pos: p, Msg: fmt.Sprintf(format, args...)}
}

// next returns the next token. After a lexical error it returns tokEOF and
// sets l.err.
func (l *lexer) next() token {
	if l.err != nil {
		return token{kind: tokEOF, pos: l.pos()}
	}
	if err := l.skipSpace(); err != nil {
		l.err = err
		return token{kind: tokEOF, pos: l.pos()}
	}
	start := l.pos()
	if l.off >= len(l.src) {
		return token{kind: tokEOF, pos: start}
	}
	c := l.src[l.off]
	rest := l.src[l.off:]
	switch {
	case c == '.' && l.peekByte(1) == '.' && l.peekByte(2) == '.':
		l.advance(3)
		return token{kind: tokEllipsis, pos: start, text: "..."}
	case isDigit(c) || (c == '.' && isDigit(l.peekByte(1))) ||
		(c == '-' && (isDigit(l.peekByte(1)) || (l.peekByte(1) == '.' && isDigit(l.peekByte(2))))):
		return l.number(start)
	case isWordCh(c):
		n := 0
		for n < len(rest) && isWordCh(rest[n]) {
			n++
		}
		// packetdrill's "sequence#" keyword (GRE) is the only word with
		// a '#'; it is not supported, and lexes as a word plus '#'.
		text := string(rest[:n])
		l.advance(n)
		if v, ok := l.defines[text]; ok {
			return defined(start, v)
		}
		return token{kind: tokWord, pos: start, text: text}
	case c == '"':
		return l.quoted(start, '"', tokString)
	case c == '`':
		return l.quoted(start, '`', tokCommand)
	case c == '-' && l.peekByte(1) == '-' && isWordCh(l.peekByte(2)):
		n := 2
		for n < len(rest) && isWordCh(rest[n]) {
			n++
		}
		if n < len(rest) && rest[n] == '=' {
			n++
			for n < len(rest) && !isSpace(rest[n]) {
				n++
			}
		}
		text := string(rest[:n])
		l.advance(n)
		return token{kind: tokOption, pos: start, text: text}
	case c == '%' && l.peekByte(1) == '{':
		end := strings.Index(string(rest), "}%")
		if end < 0 {
			l.err = l.errorf(start, "unterminated %%{ code block")
			return token{kind: tokEOF, pos: start}
		}
		text := string(rest[:end+2])
		l.advance(end + 2)
		return token{kind: tokCode, pos: start, text: text}
	case c < 0x20 || c >= 0x7f:
		l.err = l.errorf(start, "unexpected character %q", rune(c))
		return token{kind: tokEOF, pos: start}
	}
	l.advance(1)
	return token{kind: tokPunct, pos: start, text: string(c)}
}

// defined is the token a -D definition's value stands for, as packetdrill
// reads it: "x" a string, `x` a command, an integer (strtol base 0: 10,
// 0x1f, 017), else a word.
func defined(pos Pos, v string) token {
	if len(v) >= 2 && (v[0] == '"' || v[0] == '`') && v[len(v)-1] == v[0] {
		kind := tokString
		if v[0] == '`' {
			kind = tokCommand
		}
		return token{kind: kind, pos: pos, text: v[1 : len(v)-1]}
	}
	if n, err := strconv.ParseInt(v, 0, 64); err == nil {
		return token{kind: tokInt, pos: pos, text: v, num: n}
	}
	return token{kind: tokWord, pos: pos, text: v}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// number lexes [-]digits, [-][digits].digits or 0xHEX. A '.' is part of the
// number only when a digit follows it, so "1..." is 1 and an ellipsis.
func (l *lexer) number(start Pos) token {
	rest := l.src[l.off:]
	n := 0
	if rest[0] == '-' {
		n++
	}
	if n == 0 && len(rest) > 2 && rest[0] == '0' && (rest[1] == 'x' || rest[1] == 'X') && isHex(rest[2]) {
		n = 2
		for n < len(rest) && isHex(rest[n]) {
			n++
		}
		text := string(rest[:n])
		l.advance(n)
		v, err := strconv.ParseUint(text[2:], 16, 64)
		if err != nil || v > 1<<63-1 {
			l.err = l.errorf(start, "number %s out of range", text)
			return token{kind: tokEOF, pos: start}
		}
		return token{kind: tokInt, pos: start, text: text, num: int64(v)}
	}
	for n < len(rest) && isDigit(rest[n]) {
		n++
	}
	isFloat := false
	if n < len(rest) && rest[n] == '.' && n+1 < len(rest) && isDigit(rest[n+1]) {
		isFloat = true
		n++
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
	}
	text := string(rest[:n])
	l.advance(n)
	if isFloat {
		return token{kind: tokFloat, pos: start, text: text}
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		l.err = l.errorf(start, "number %s out of range", text)
		return token{kind: tokEOF, pos: start}
	}
	return token{kind: tokInt, pos: start, text: text, num: v}
}

// quoted lexes "..." or `...` with backslash escapes (\" \\ \n \t \xHH); the
// token's text is the unescaped value.
func (l *lexer) quoted(start Pos, quote byte, kind tokenKind) token {
	l.advance(1)
	var b strings.Builder
	for {
		if l.off >= len(l.src) {
			what := "string"
			if kind == tokCommand {
				what = "backquoted command"
			}
			l.err = l.errorf(start, "unterminated %s", what)
			return token{kind: tokEOF, pos: start}
		}
		c := l.src[l.off]
		if c == quote {
			l.advance(1)
			return token{kind: kind, pos: start, text: b.String()}
		}
		if c == '\\' && l.off+1 < len(l.src) {
			e := l.src[l.off+1]
			switch {
			case e == 'n' && kind == tokString:
				b.WriteByte('\n')
			case e == 't' && kind == tokString:
				b.WriteByte('\t')
			case e == quote || e == '\\':
				b.WriteByte(e)
			case e == 'x' && kind == tokString && isHex(l.peekByte(2)) && isHex(l.peekByte(3)):
				// \xHH, as C (and packetdrill) reads it: a byte.
				v, _ := strconv.ParseUint(string(l.src[l.off+2:l.off+4]), 16, 8)
				b.WriteByte(byte(v))
				l.advance(4)
				continue
			default:
				// Keep unknown escapes as written (a shell command
				// may want its backslashes).
				b.WriteByte('\\')
				b.WriteByte(e)
			}
			l.advance(2)
			continue
		}
		b.WriteByte(c)
		l.advance(1)
	}
}

// rawUntil returns the source text from the current position up to (not
// including) the first unnested close byte, and consumes it and the close
// byte. It is used for the free-text note after a system call's result,
// e.g. "(Operation now in progress)".
func (l *lexer) rawUntil(open, close byte) (string, bool) {
	depth := 0
	for i := l.off; i < len(l.src); i++ {
		switch l.src[i] {
		case open:
			depth++
		case close:
			if depth == 0 {
				text := string(l.src[l.off:i])
				l.advance(i - l.off + 1)
				return text, true
			}
			depth--
		case '\n':
			return "", false
		}
	}
	return "", false
}

package topology

import (
	"bytes"
	"fmt"
	"strings"
)

// render does to the raw file what containerlab does before parsing it,
// minus the Go template step (which we refuse: a file that needs it must
// be rendered first). containerlab then expands variables envsubst style,
// leaving unset ones without a default as they are; so do we, line by line
// so that positions in the result are those of the file.
func render(data []byte, env func(string) string) (out []byte, problems, warnings []Problem) {
	if env == nil {
		env = func(string) string { return "" }
	}
	if i := bytes.Index(data, []byte("{{")); i >= 0 {
		line := bytes.Count(data[:i], []byte("\n")) + 1
		col := i - bytes.LastIndexByte(data[:i], '\n')
		return nil, []Problem{{Line: line, Col: col,
			Msg: "Go templates ({{ ... }}) are not supported by our runner: render the file first, or write plain YAML"}}, nil
	}
	x := expander{env: env}
	var b bytes.Buffer
	for i, ln := range strings.SplitAfter(string(data), "\n") {
		x.line = i + 1
		b.WriteString(x.expand(ln, 0))
	}
	return b.Bytes(), x.problems, x.warnings
}

type expander struct {
	env                func(string) string
	line               int
	problems, warnings []Problem
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// expand substitutes variables in s, which starts at byte offset off of
// the current line. An empty value counts as unset: env cannot tell them
// apart.
func (x *expander) expand(s string, off int) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			i++
			continue
		}
		switch n := s[i+1]; {
		case n == '$': // $$ is a literal $
			b.WriteByte('$')
			i += 2
		case isDigit(n): // $1 is left alone, as containerlab does
			b.WriteString(s[i : i+2])
			i += 2
		case n == '{' && i+2 < len(s) && isDigit(s[i+2]):
			b.WriteString(s[i : i+3])
			i += 3
		case n == '{':
			end := closingBrace(s, i+2)
			if end < 0 {
				x.problem(off+i, "${ without a closing } on the same line")
				b.WriteString(s[i:])
				i = len(s)
				continue
			}
			b.WriteString(x.substitute(s[i:end+1], s[i+2:end], off+i))
			i = end + 1
		case isNameByte(n, true):
			j := i + 2
			for j < len(s) && isNameByte(s[j], false) {
				j++
			}
			if v := x.env(s[i+1 : j]); v != "" && s[i+1:j] != "_" {
				b.WriteString(v)
			} else {
				b.WriteString(s[i:j])
			}
			i = j
		default:
			b.WriteByte('$')
			i++
		}
	}
	return b.String()
}

// closingBrace finds the } that closes a ${ whose body starts at from,
// counting nested ${ in defaults.
func closingBrace(s string, from int) int {
	depth := 1
	for j := from; j < len(s) && s[j] != '\n'; j++ {
		switch {
		case s[j] == '$' && j+1 < len(s) && s[j+1] == '{':
			depth++
			j++
		case s[j] == '}':
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return -1
}

func (x *expander) substitute(whole, body string, at int) string {
	j := 0
	for j < len(body) && isNameByte(body[j], j == 0) {
		j++
	}
	name, rest := body[:j], body[j:]
	if name == "" {
		x.problem(at, fmt.Sprintf("bad substitution %s: want ${VAR} or ${VAR:=default}", whole))
		return whole
	}
	v := x.env(name)
	if rest == "" {
		if v == "" {
			x.warnings = append(x.warnings, Problem{Line: x.line, Col: at + 1,
				Msg: fmt.Sprintf("%s is not set and has no default: left as is (as containerlab does)", whole)})
			return whole
		}
		return v
	}
	for _, op := range []string{":=", ":-", "=", "-"} {
		if strings.HasPrefix(rest, op) {
			if v != "" {
				return v
			}
			return x.expand(rest[len(op):], at+2+j+len(op))
		}
	}
	x.problem(at, fmt.Sprintf("unsupported substitution %s: only ${VAR}, ${VAR:=default} and ${VAR:-default} are supported", whole))
	return whole
}

func (x *expander) problem(at int, msg string) {
	x.problems = append(x.problems, Problem{Line: x.line, Col: at + 1, Msg: msg})
}

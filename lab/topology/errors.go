package topology

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with (or, as a warning, ignored in) a
// topology file, at the line and column of the offending key or item.
type Problem struct {
	Line, Col int
	Path      string // e.g. topology.nodes.gnb1.kind, topology.links[3].vars.delay
	Msg       string
}

func (p Problem) format(file string) string {
	var b strings.Builder
	b.WriteString(file)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Col > 0 {
			fmt.Fprintf(&b, ":%d", p.Col)
		}
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in one file. Parse and CheckHost return
// it; callers may errors.As to it for the positions.
type Error struct {
	File     string
	Problems []Problem
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.format(e.File)
	}
	return strings.Join(lines, "\n")
}

// sortProblems orders problems by position, keeping the order of those
// found at the same place.
func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Col < ps[j].Col
	})
}

// dedupe drops repeats of a problem (one refusal reached twice, e.g. a
// link-wide jitter checked for both directions). ps must be sorted.
func dedupe(ps []Problem) []Problem {
	out := ps[:0]
	for i, p := range ps {
		if i > 0 && p == ps[i-1] {
			continue
		}
		out = append(out, p)
	}
	return out
}

// WarningText renders the topology's warnings like errors, one a line.
func (t *Topology) WarningText() []string {
	out := make([]string, len(t.Warnings))
	for i, w := range t.Warnings {
		out[i] = w.format(t.File)
	}
	return out
}

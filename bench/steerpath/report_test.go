package steerpath

import (
	"strings"
	"testing"
	"time"
)

func TestTableComparesWithSameSizeBaseline(t *testing.T) {
	run := func(n uint64) Run { return Run{Wall: time.Second, Delivered: n, Sent: n, Thread: time.Second} }
	rep := &Report{Results: []Result{
		{Inner: 64, Frame: 122, Wire: 146, Case: CaseSender, Runs: []Run{run(300)}},
		{Inner: 64, Frame: 122, Wire: 146, Case: CaseBaseline, Runs: []Run{run(200)}},
		{Inner: 512, Frame: 570, Wire: 594, Case: CaseSender, Runs: []Run{run(100)}},
		{Inner: 512, Frame: 570, Wire: 594, Case: CaseBaseline, Runs: []Run{run(400)}},
	}}
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| 64 (122) | sender-only | 0.000 (0.000–0.000) | 0.00 | 0.00 | 1.50 (1.50–1.50) |",
		"| 512 (570) | sender-only | 0.000 (0.000–0.000) | 0.00 | 0.00 | 0.25 (0.25–0.25) |"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

package classify

import (
	"fmt"
	"testing"
)

// BenchmarkClassify measures one classification through BPF_PROG_TEST_RUN
// with n rules, for a frame matching the last rule and one matching none.
// Each rule is one entry; the last alone matches the frame's dst port.
func BenchmarkClassify(b *testing.B) {
	c := newClassifier(b)
	match := v4udp() // dst port 53
	miss := v4tcp()  // TCP: no rule below matches
	for _, n := range []int{1, 100, MaxEntries} {
		rules := make([]Rule, n)
		for i := range rules {
			rules[i] = Rule{ID: fmt.Sprint("r", i), Priority: 1, Action: ActionPassthrough,
				Filters: []Filter{{Protocol: []string{"UDP"}, DstPort: []string{"1000"}}}}
		}
		rules[n-1].Filters[0].DstPort = []string{"53"}
		if err := c.Apply(rules); err != nil {
			b.Fatal(err)
		}
		for _, fc := range []struct {
			name  string
			frame []byte
			mark  uint32
		}{{"match-last", match, uint32(n)}, {"no-match", miss, staleMark}} {
			b.Run(fmt.Sprintf("rules=%d/%s", n, fc.name), func(b *testing.B) {
				if _, mark := run(b, c.Program(), fc.frame); mark != fc.mark {
					b.Fatalf("mark %d, want %d", mark, fc.mark)
				}
				_, per, err := c.Program().Benchmark(fc.frame, b.N, b.ResetTimer)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(per.Nanoseconds()), "ns/pkt")
			})
		}
	}
}

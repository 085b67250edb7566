package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mecorch/mecorch/latency"
)

func TestStampProbeAgainstReflector(t *testing.T) {
	// The gnb's --stamp-listen reflector, started the way runGNB does.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	stop, err := startReflector(context.Background(), addr, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var out, errb bytes.Buffer
	if code := run([]string{"stamp-probe", "--target", addr, "--interval", "10ms", "--count", "5", "--json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var n int
	var sum probeSummary
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var head struct{ Type string }
		if err := json.Unmarshal(sc.Bytes(), &head); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		switch head.Type {
		case "stamp_sample":
			var s probeSample
			if err := json.Unmarshal(sc.Bytes(), &s); err != nil || s.Lost || s.RTTNs <= 0 {
				t.Errorf("sample %q: %v", sc.Text(), err)
			}
			n++
		case "stamp_summary":
			if err := json.Unmarshal(sc.Bytes(), &sum); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n != 5 || sum.Stats.Sent != 5 || sum.Stats.Lost != 0 || sum.Stats.P50 <= 0 {
		t.Errorf("%d samples, summary %+v", n, sum)
	}
}

func TestStampProbeUsage(t *testing.T) {
	for _, args := range []string{"", "--target x:1 --mode kernel", "--target x:1 extra"} {
		if code := run(append([]string{"stamp-probe"}, strings.Fields(args)...), io.Discard, io.Discard); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

func TestSummarize(t *testing.T) {
	at := time.Unix(100, 0)
	var in []latency.Sample
	for i := range 100 {
		in = append(in, latency.Sample{SentAt: at.Add(time.Duration(i) * time.Second), RTT: time.Duration(i+1) * time.Millisecond, Source: latency.SourceKernel})
	}
	in = append(in, latency.Sample{SentAt: at, Lost: true, Source: latency.SourceUser})
	st := summarize(in)
	if st.Sent != 101 || st.Lost != 1 || st.Min != time.Millisecond || st.P50 != 50*time.Millisecond ||
		st.P95 != 95*time.Millisecond || st.P99 != 99*time.Millisecond || st.Source != latency.SourceUser {
		t.Errorf("%+v", st)
	}
}

func TestBurnStops(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := runBurn(ctx, []string{"--threads", "2"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
}

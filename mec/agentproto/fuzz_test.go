package agentproto

import (
	"errors"
	"reflect"
	"testing"
)

// FuzzDecode feeds Decode what a peer could send. Nothing may panic; every
// refusal is a *ProtocolError; a frame Decode accepts re-encodes to a frame
// that decodes to the same value; DecodeBody of every body type either
// refuses with a *ProtocolError or accepts.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"type":"hello","seq":1,"body":{"hostId":"h","siteId":"s","capacity":{"milliCpu":1000,"memoryMiB":512},"generation":0,"token":"t"}}`,
		`{"v":1,"type":"welcome","replyTo":1,"body":{"heartbeatIntervalMs":2000,"serverVersion":"0.1.0"}}`,
		`{"v":1,"type":"desired","seq":2,"body":{"hostId":"h","generation":3,"instances":[{"id":"i","appDId":"a","appPkgId":"p","state":"Running","resources":{"milliCpu":1}}]}}`,
		`{"v":1,"type":"status","seq":3,"body":{"hostId":"h","generation":3,"instances":[{"id":"i","state":"Failed","message":"exit 1","usage":{"milliCpu":1,"memoryBytes":2}}]}}`,
		`{"v":1,"type":"heartbeat","seq":4,"body":{"time":"2025-01-02T03:04:05Z","generation":3}}`,
		`{"v":1,"type":"logsRequest","seq":5,"body":{"instanceId":"i","maxBytes":65536}}`,
		`{"v":1,"type":"logs","seq":6,"replyTo":5,"body":{"instanceId":"i","data":"<a&b>\n\u2028","truncated":true}}`,
		`{"v":1,"type":"paths","seq":7,"body":{"paths":[{"local":"10.0.0.1","remote":"10.0.1.1","state":"Active","srttMicros":800}]}}`,
		`{"v":1,"type":"error","body":{"code":"badFrame","detail":"x"}}`,
		`{"v":1,"type":"probePlan","seq":8,"body":{"targets":[{"id":"h2","kind":"host","addr":"10.0.2.2:862"},{"id":"c","kind":"cell","addr":"[fd00::1]:862"}],"intervalMs":100,"windowMs":10000}}`,
		`{"v":1,"type":"rtt","seq":9,"body":{"results":[{"target":"c","kind":"cell","stats":{"sent":10,"lost":1,"loss":0.1,"minNs":1,"p50Ns":2,"p95Ns":3,"p99Ns":4,"jitterNs":1,"source":"kernel","from":"2025-01-02T03:04:05Z","to":"2025-01-02T03:04:15Z"}}]}}`,
		`{"v":2,"type":"hello"}`,
		`{"v":1,"type":"hello","body":null}`,
		`{"v":1,"type":"hello","body":"x"} `,
		`{"V":1,"TYPE":"error","Body":{"Code":"x"}}`,
		`{"v":1,"type":"status","body":{"hostId":"h","instances":[{"id":"a","state":"Running"},{"id":"a","state":"Running"}]}}`,
		`[`, `{}`, `null`, ``, `{"v":1e400}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := Decode(data)
		if err != nil {
			var pe *ProtocolError
			if !errors.As(err, &pe) {
				t.Fatalf("Decode refused with %T %v, not a *ProtocolError", err, err)
			}
			return
		}
		for _, v := range []any{&Hello{}, &Welcome{}, &DesiredState{}, &Report{}, &Heartbeat{}, &LogsRequest{}, &Logs{}, &Paths{}, &ProbePlan{}, &RTTReport{}, &Error{}} {
			if err := DecodeBody(fr, v); err != nil {
				var pe *ProtocolError
				if !errors.As(err, &pe) {
					t.Fatalf("DecodeBody(%T) refused with %T %v", v, err, err)
				}
			}
		}
		again, err := Marshal(fr)
		if err != nil {
			t.Fatalf("a decoded frame does not encode: %v (%+v)", err, fr)
		}
		fr2, err := Decode(again)
		if err != nil {
			t.Fatalf("a re-encoded frame does not decode: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(fr, fr2) {
			t.Fatalf("round trip changed the frame:\n%+v (%s)\n%+v (%s)", fr, fr.Body, fr2, fr2.Body)
		}
	})
}

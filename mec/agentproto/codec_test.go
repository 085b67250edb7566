package agentproto

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"
)

func codeOf(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *ProtocolError", err, err)
	}
	return pe.Code
}

func TestDecode(t *testing.T) {
	big := `{"v":1,"type":"logs","body":{"instanceId":"a","data":"` + strings.Repeat("x", MaxFrameBytes) + `"}}`
	tests := []struct {
		name, in string
		code     string // "" = accepted
		want     Frame
	}{
		{name: "hello", in: `{"v":1,"type":"hello","seq":1,"body":{"hostId":"h"}}`,
			want: Frame{V: 1, Type: TypeHello, Seq: 1, Body: []byte(`{"hostId":"h"}`)}},
		{name: "body compacted", in: " {\"v\":1, \"type\":\"heartbeat\",\n\"replyTo\":7, \"body\": { \"generation\" : 3 } }\n",
			want: Frame{V: 1, Type: TypeHeartbeat, ReplyTo: 7, Body: []byte(`{"generation":3}`)}},
		{name: "null body dropped", in: `{"v":1,"type":"error","body":null}`, want: Frame{V: 1, Type: TypeError}},
		{name: "empty", in: ``, code: CodeBadFrame},
		{name: "not an object", in: `[1,2]`, code: CodeBadFrame},
		{name: "null", in: `null`, code: CodeBadFrame},
		{name: "malformed", in: `{"v":1,"type":"hello"`, code: CodeBadFrame},
		{name: "trailing data", in: `{"v":1,"type":"hello","body":{}} {}`, code: CodeBadFrame},
		{name: "trailing garbage", in: `{"v":1,"type":"hello","body":{}}x`, code: CodeBadFrame},
		{name: "unknown field", in: `{"v":1,"type":"hello","extra":1}`, code: CodeBadFrame},
		{name: "seq negative", in: `{"v":1,"type":"hello","seq":-1}`, code: CodeBadFrame},
		{name: "type missing", in: `{"v":1}`, code: CodeBadFrame},
		{name: "type not a string", in: `{"v":1,"type":3}`, code: CodeBadFrame},
		{name: "no version", in: `{"type":"hello"}`, code: CodeBadVersion},
		{name: "version 2", in: `{"v":2,"type":"hello"}`, code: CodeBadVersion},
		{name: "version 2 with new fields", in: `{"v":2,"type":"hello","trace":"x"}`, code: CodeBadVersion},
		{name: "version as string", in: `{"v":"1","type":"hello"}`, code: CodeBadVersion},
		{name: "unknown type", in: `{"v":1,"type":"reboot"}`, code: CodeUnexpected},
		{name: "too large", in: big, code: CodeTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Decode([]byte(tt.in))
			if got := codeOf(t, err); got != tt.code {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.code)
			}
			if tt.code == "" && !reflect.DeepEqual(f, tt.want) {
				t.Fatalf("frame = %+v (body %s), want %+v (body %s)", f, f.Body, tt.want, tt.want.Body)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	ds := DesiredState{HostID: "h1", Generation: 4, Instances: []DesiredInstance{{ID: "i1", State: DesiredRunning}}}
	b, err := Encode(TypeDesired, 3, 0, ds)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("\n")) {
		t.Errorf("encoded frame has a newline: %q", b)
	}
	f, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != TypeDesired || f.Seq != 3 || f.V != Version {
		t.Fatalf("frame = %+v", f)
	}
	var got DesiredState
	if err := DecodeBody(f, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, ds) {
		t.Fatalf("body = %+v, want %+v", got, ds)
	}
	// HTML-looking text survives unescaped, so a body re-encodes byte for byte.
	b, err = Encode(TypeLogs, 1, 9, Logs{InstanceID: "i", Data: "<a&b>"})
	if err != nil || !bytes.Contains(b, []byte("<a&b>")) {
		t.Fatalf("logs frame %s, %v", b, err)
	}
}

func TestEncodeRefuses(t *testing.T) {
	if _, err := Encode("reboot", 1, 0, nil); codeOf(t, err) != CodeUnexpected {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := Encode(TypeLogs, 1, 0, Logs{InstanceID: "i", Data: strings.Repeat("x", MaxFrameBytes)}); codeOf(t, err) != CodeTooLarge {
		t.Errorf("oversize body: %v", err)
	}
	if _, err := Marshal(Frame{V: 2, Type: TypeHello}); codeOf(t, err) != CodeBadVersion {
		t.Errorf("version 2: %v", err)
	}
	if _, err := Marshal(Frame{V: 1, Type: TypeHello, Body: []byte(`{bad`)}); err == nil {
		t.Error("a frame with a malformed raw body was encoded")
	}
	if _, err := Encode(TypeHello, 1, 0, func() {}); err == nil {
		t.Error("an unencodable body was encoded")
	}
}

func TestDirection(t *testing.T) {
	tests := []struct {
		typ               string
		fromAgent, fromMO bool
	}{
		{TypeHello, true, false}, {TypeWelcome, false, true}, {TypeDesired, false, true},
		{TypeStatus, true, false}, {TypeHeartbeat, true, false}, {TypeLogsRequest, false, true},
		{TypeLogs, true, false}, {TypePaths, true, false}, {TypeError, true, true}, {"reboot", false, false},
		{TypeProbePlan, false, true}, {TypeRTT, true, false},
	}
	for _, tt := range tests {
		if FromAgent(tt.typ) != tt.fromAgent || FromOrchestrator(tt.typ) != tt.fromMO {
			t.Errorf("%s: FromAgent=%v FromOrchestrator=%v, want %v %v", tt.typ,
				FromAgent(tt.typ), FromOrchestrator(tt.typ), tt.fromAgent, tt.fromMO)
		}
		if KnownType(tt.typ) != (tt.fromAgent || tt.fromMO) {
			t.Errorf("KnownType(%s) = %v", tt.typ, KnownType(tt.typ))
		}
	}
}

func TestHelloNeverPrintsItsToken(t *testing.T) {
	h := Hello{HostID: "h1", SiteID: "s1", Token: "s3cr3t-token"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("hello", "hello", h)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("hello", "hello", h)
	for _, s := range []string{buf.String(), fmt.Sprint(h), fmt.Sprintf("%v %+v %#v %s", h, h, h, h), fmt.Sprintf("%v", &h)} {
		if strings.Contains(s, "s3cr3t") {
			t.Errorf("token printed: %s", s)
		}
		if !strings.Contains(s, "h1") {
			t.Errorf("host missing: %s", s)
		}
	}
	// The wire form must carry it, of course.
	b, err := Encode(TypeHello, 1, 0, h)
	if err != nil || !bytes.Contains(b, []byte("s3cr3t-token")) {
		t.Fatalf("hello frame %s, %v", b, err)
	}
}

func TestDecodeBody(t *testing.T) {
	frame := func(typ, body string) Frame { return Frame{V: 1, Type: typ, Body: []byte(body)} }
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Format(time.RFC3339)
	tests := []struct {
		name   string
		f      Frame
		v      any
		code   string
		params []string // field paths expected in Params, in order
	}{
		{"hello ok", frame(TypeHello, `{"hostId":"h","siteId":"s","capacity":{"milliCpu":4000},"generation":2,"labels":{"gpu":"no"},"token":"t"}`), &Hello{}, "", nil},
		{"hello empty ids", frame(TypeHello, `{"hostId":"","siteId":""}`), &Hello{}, CodeBadFrame, []string{"hostId", "siteId"}},
		{"hello long id", frame(TypeHello, `{"hostId":"`+strings.Repeat("h", 129)+`","siteId":"s"}`), &Hello{}, CodeBadFrame, []string{"hostId"}},
		{"hello negative capacity", frame(TypeHello, `{"hostId":"h","siteId":"s","capacity":{"milliCpu":-1,"gpus":-2}}`), &Hello{}, CodeBadFrame, []string{"capacity.milliCpu", "capacity.gpus"}},
		{"hello negative generation", frame(TypeHello, `{"hostId":"h","siteId":"s","generation":-1}`), &Hello{}, CodeBadFrame, []string{"generation"}},
		{"hello empty label key", frame(TypeHello, `{"hostId":"h","siteId":"s","labels":{"":"x"}}`), &Hello{}, CodeBadFrame, []string{"labels"}},
		{"hello unknown field", frame(TypeHello, `{"hostId":"h","siteId":"s","pwd":"x"}`), &Hello{}, CodeBadFrame, nil},
		{"hello wrong field type", frame(TypeHello, `{"hostId":7,"siteId":"s"}`), &Hello{}, CodeBadFrame, nil},
		{"hello trailing data", frame(TypeHello, `{"hostId":"h","siteId":"s"} {}`), &Hello{}, CodeBadFrame, nil},
		{"hello missing body", frame(TypeHello, ``), &Hello{}, CodeBadFrame, nil},
		{"hello body in a status frame", frame(TypeStatus, `{"hostId":"h","siteId":"s"}`), &Hello{}, CodeUnexpected, nil},
		{"welcome ok", frame(TypeWelcome, `{"heartbeatIntervalMs":2000,"serverVersion":"1"}`), &Welcome{}, "", nil},
		{"welcome negative", frame(TypeWelcome, `{"heartbeatIntervalMs":-1}`), &Welcome{}, CodeBadFrame, []string{"heartbeatIntervalMs"}},
		{"desired ok", frame(TypeDesired, `{"hostId":"h","generation":3,"instances":[{"id":"a","state":"Running","resources":{"milliCpu":1}},{"id":"b","state":"Absent","resources":{}}]}`), &DesiredState{}, "", nil},
		{"desired bad", frame(TypeDesired, `{"hostId":"h","generation":-3,"instances":[{"id":"a","state":"Gone","resources":{"memoryMiB":-1},"stopGraceSeconds":-1},{"id":"a","state":"Stopped","resources":{}},{"id":"","state":"Running","resources":{}}]}`), &DesiredState{}, CodeBadFrame,
			[]string{"generation", "instances[0].state", "instances[0].resources.memoryMiB", "instances[0].stopGraceSeconds", "instances[1].id", "instances[2].id"}},
		{"desired with rules", frame(TypeDesired, `{"hostId":"h","generation":3,"instances":[{"id":"a","state":"Running","resources":{},"trafficRules":[{"trafficRuleId":"r1","priority":0,"action":"DROP","trafficFilter":[{"dstPort":["53"]}]}],"dnsRules":[{"dnsRuleId":"d","domainName":"x.example","ipAddressType":"IP_V6","ipAddress":"fd00::7"}]}]}`), &DesiredState{}, "", nil},
		{"desired bad rules", frame(TypeDesired, `{"hostId":"h","generation":3,"instances":[{"id":"a","state":"Running","resources":{},"trafficRules":[{"trafficRuleId":"r1","priority":256,"action":"BOUNCE","trafficFilter":[]},{"trafficRuleId":"r1","priority":1,"action":"DROP","filterType":"STREAM","trafficFilter":[{}]}],"dnsRules":[{"dnsRuleId":"d","domainName":"","ipAddressType":"IP_V4","ipAddress":"fd00::7","ttl":-1}]}]}`), &DesiredState{}, CodeBadFrame,
			[]string{"instances[0].trafficRules[0].priority", "instances[0].trafficRules[0].action", "instances[0].trafficRules[0].trafficFilter",
				"instances[0].trafficRules[1].trafficRuleId", "instances[0].trafficRules[1].filterType",
				"instances[0].dnsRules[0].domainName", "instances[0].dnsRules[0].ipAddress", "instances[0].dnsRules[0].ttl"}},
		{"status ok", frame(TypeStatus, `{"hostId":"h","generation":3,"instances":[{"id":"a","state":"Running","usage":{"milliCpu":5,"memoryBytes":6}},{"id":"b","state":"Failed","message":"exit 1"}]}`), &Report{}, "", nil},
		{"status without host (HTTP form)", frame(TypeStatus, `{"generation":0,"instances":[]}`), &Report{}, "", nil},
		{"status bad", frame(TypeStatus, `{"hostId":"h","generation":-1,"instances":[{"id":"a","state":"Running"},{"id":"a","state":"Starting","restarts":-1},{"id":"","state":"Stopped","usage":{"memoryBytes":-1}}]}`), &Report{}, CodeBadFrame,
			[]string{"generation", "instances[1].id", "instances[1].state", "instances[1].restarts", "instances[2].id", "instances[2].usage.memoryBytes"}},
		{"status unknown instance field", frame(TypeStatus, `{"hostId":"h","generation":1,"instances":[{"id":"a","state":"Running","pid":4}]}`), &Report{}, CodeBadFrame, nil},
		{"heartbeat ok", frame(TypeHeartbeat, `{"time":"`+now+`","generation":1}`), &Heartbeat{}, "", nil},
		{"heartbeat without time", frame(TypeHeartbeat, `{"generation":-1}`), &Heartbeat{}, CodeBadFrame, []string{"time", "generation"}},
		{"logsRequest ok", frame(TypeLogsRequest, `{"instanceId":"a","maxBytes":1048576}`), &LogsRequest{}, "", nil},
		{"logsRequest zero", frame(TypeLogsRequest, `{"instanceId":"a","maxBytes":0}`), &LogsRequest{}, CodeBadFrame, []string{"maxBytes"}},
		{"logsRequest over", frame(TypeLogsRequest, `{"instanceId":"","maxBytes":1048577}`), &LogsRequest{}, CodeBadFrame, []string{"instanceId", "maxBytes"}},
		{"logs ok", frame(TypeLogs, `{"instanceId":"a","data":"x","truncated":true}`), &Logs{}, "", nil},
		{"logs no instance", frame(TypeLogs, `{"data":"x"}`), &Logs{}, CodeBadFrame, []string{"instanceId"}},
		{"paths ok", frame(TypePaths, `{"paths":[{"local":"10.0.0.1","remote":"10.0.1.1","state":"Active","srttMicros":900}]}`), &Paths{}, "", nil},
		{"paths bad", frame(TypePaths, `{"paths":[{"local":"","remote":"r","state":"Up","srttMicros":-1}]}`), &Paths{}, CodeBadFrame, []string{"paths[0].local", "paths[0].state", "paths[0].srttMicros"}},
		{"hello probeAddr any host", frame(TypeHello, `{"hostId":"h","siteId":"s","probeAddr":":862"}`), &Hello{}, "", nil},
		{"hello probeAddr bad", frame(TypeHello, `{"hostId":"h","siteId":"s","probeAddr":"edge1:0"}`), &Hello{}, CodeBadFrame, []string{"probeAddr", "probeAddr"}},
		{"probePlan ok", frame(TypeProbePlan, `{"targets":[{"id":"edge2","kind":"host","addr":"10.0.2.2:862"},{"id":"262-01-0000000a1","kind":"cell","addr":"[fd00::1]:862"}],"intervalMs":100,"windowMs":10000}`), &ProbePlan{}, "", nil},
		{"probePlan empty stops", frame(TypeProbePlan, `{"targets":[]}`), &ProbePlan{}, "", nil},
		{"probePlan bad", frame(TypeProbePlan, `{"targets":[{"id":"e","kind":"router","addr":"10.0.0.1"},{"id":"e","kind":"host","addr":"10.0.0.1:862"},{"id":"e","kind":"host","addr":"x:862"}],"intervalMs":1,"windowMs":10000}`), &ProbePlan{}, CodeBadFrame,
			[]string{"targets[0].kind", "targets[0].addr", "targets[2].id", "targets[2].addr", "intervalMs"}},
		{"rtt ok", frame(TypeRTT, `{"results":[{"target":"edge2","kind":"host","stats":{"sent":100,"lost":1,"loss":0.01,"minNs":7900000,"p50Ns":8000000,"p95Ns":8100000,"p99Ns":8200000,"jitterNs":30000,"source":"kernel","from":"`+now+`","to":"`+now+`"}}]}`), &RTTReport{}, "", nil},
		{"rtt all lost", frame(TypeRTT, `{"results":[{"target":"edge2","kind":"host","stats":{"sent":100,"lost":100,"loss":1,"from":"`+now+`","to":"`+now+`"}}]}`), &RTTReport{}, "", nil},
		{"rtt bad", frame(TypeRTT, `{"results":[{"target":"","kind":"cell","stats":{"sent":1,"lost":2,"loss":2,"minNs":5,"p50Ns":4,"p95Ns":4,"p99Ns":4,"jitterNs":-1,"source":"guess"}}]}`), &RTTReport{}, CodeBadFrame,
			[]string{"results[0].target", "results[0].stats.lost", "results[0].stats.loss", "results[0].stats", "results[0].stats.jitterNs", "results[0].stats.to"}},
		{"error ok", frame(TypeError, `{"code":"tooLarge","detail":"x"}`), &Error{}, "", nil},
		{"error without code", frame(TypeError, `{"detail":"x"}`), &Error{}, CodeBadFrame, []string{"code"}},
		{"not an object", frame(TypeError, `"x"`), &Error{}, CodeBadFrame, nil},
		{"other type strict", frame(TypeError, `{"a":1}`), &struct{ B int }{}, CodeBadFrame, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DecodeBody(tt.f, tt.v)
			if got := codeOf(t, err); got != tt.code {
				t.Fatalf("code = %q (%v), want %q", got, err, tt.code)
			}
			if tt.params == nil {
				return
			}
			var pe *ProtocolError
			errors.As(err, &pe)
			var got []string
			for _, p := range pe.Params {
				got = append(got, p.Name)
			}
			if !reflect.DeepEqual(got, tt.params) {
				t.Fatalf("params = %q, want %q (%v)", got, tt.params, err)
			}
		})
	}
}

func TestDecodeBodyNeverQuotesToken(t *testing.T) {
	f := Frame{V: 1, Type: TypeHello, Body: []byte(`{"hostId":"h","siteId":"s","token":"` + strings.Repeat("k", maxTokenLen+1) + `"}`)}
	err := DecodeBody(f, &Hello{})
	if codeOf(t, err) != CodeBadFrame || strings.Contains(err.Error(), "kkkk") {
		t.Fatalf("err = %v", err)
	}
}

package etsiapi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	etsiapi "github.com/mecorch/mecorch/etsi-api"
)

// wsAgent is a raw websocket peer playing an agent, so that tests can send
// any frame, also broken ones.
type wsAgent struct {
	t    *testing.T
	conn *websocket.Conn
}

func (s *server) dialAgent(token string) (*wsAgent, *http.Response, error) {
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(s.url, "http")+"/api/v1/agents/connect", h)
	if err != nil {
		return nil, resp, err
	}
	s.t.Cleanup(func() { c.Close() })
	return &wsAgent{t: s.t, conn: c}, resp, nil
}

func (a *wsAgent) sendRaw(data string) {
	a.t.Helper()
	if err := a.conn.WriteMessage(websocket.TextMessage, []byte(data)); err != nil {
		a.t.Fatal(err)
	}
}

func (a *wsAgent) send(typ string, seq int, body any) {
	a.t.Helper()
	b, _ := json.Marshal(body)
	f, _ := json.Marshal(map[string]any{"v": 1, "type": typ, "seq": seq, "body": json.RawMessage(b)})
	a.sendRaw(string(f))
}

type frame struct {
	V    int             `json:"v"`
	Type string          `json:"type"`
	Body json.RawMessage `json:"body"`
}

// next reads the next frame of type typ, skipping others; "" takes any.
func (a *wsAgent) next(typ string) frame {
	a.t.Helper()
	_ = a.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, data, err := a.conn.ReadMessage()
		if err != nil {
			a.t.Fatalf("waiting for %q: %v", typ, err)
		}
		var f frame
		if err := json.Unmarshal(data, &f); err != nil {
			a.t.Fatalf("frame %q: %v", data, err)
		}
		if f.Type == "error" && typ != "error" {
			a.t.Fatalf("waiting for %q: got %s", typ, data)
		}
		if typ == "" || f.Type == typ {
			return f
		}
	}
}

// closedWith expects an error frame with code, then the connection's end.
func (a *wsAgent) closedWith(code string) {
	a.t.Helper()
	f := a.next("error")
	var e struct{ Code, Detail string }
	_ = json.Unmarshal(f.Body, &e)
	if e.Code != code {
		a.t.Fatalf("error code %q (%s), want %q", e.Code, e.Detail, code)
	}
	_ = a.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err := a.conn.ReadMessage(); err != nil {
			if strings.Contains(err.Error(), "timeout") {
				a.t.Fatal("the connection stayed open after the error")
			}
			return
		}
	}
}

// tokenFor gets an access token for a client's credentials.
func (s *server) tokenFor(id, secret string) string {
	s.t.Helper()
	req, _ := http.NewRequest("POST", s.url+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.SetBasicAuth(id, secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	return tok.AccessToken
}

func hello(host, site string) map[string]any {
	return map[string]any{"hostId": host, "siteId": site, "agentVersion": "test-1",
		"capacity": map[string]any{"milliCpu": 4000, "memoryMiB": 4096}, "generation": 0}
}

type desired struct {
	Generation int64 `json:"generation"`
	Instances  []struct {
		ID, State string
	} `json:"instances"`
}

// TestAgentChannel: an agent registers its host over the websocket, gets
// its desired state pushed when an instance lands on it, and completes the
// operation with its status report.
func TestAgentChannel(t *testing.T) {
	s := start(t, engines(t)["embedded"](t))
	s.must("POST", "/api/v1/sites", map[string]any{"id": "s1", "name": "one"}, http.StatusCreated)
	if _, resp, err := s.dialAgent(""); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("no token: %v %v", err, resp)
	}
	a, _, err := s.dialAgent(s.token("h1", "agent"))
	if err != nil {
		t.Fatal(err)
	}
	a.send("hello", 1, hello("h1", "s1"))
	var w struct{ HeartbeatIntervalMs int64 }
	_ = json.Unmarshal(a.next("welcome").Body, &w)
	if w.HeartbeatIntervalMs <= 0 {
		t.Fatalf("welcome %+v", w)
	}
	var ds desired
	_ = json.Unmarshal(a.next("desired").Body, &ds)
	if len(ds.Instances) != 0 {
		t.Fatalf("first desired state %+v", ds)
	}
	var h struct {
		State        string `json:"state"`
		AgentVersion string `json:"agentVersion"`
		Capacity     struct {
			VCPU float64 `json:"vcpu"`
		} `json:"capacity"`
	}
	_ = json.Unmarshal(s.must("GET", "/api/v1/hosts/h1", nil, http.StatusOK), &h)
	if h.State != "Ready" || h.Capacity.VCPU != 4 {
		t.Fatalf("registered host %+v", h)
	}

	zip, err := os.ReadFile("../examples/edge-echo.zip")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(zip)
	var pkg struct{ ID string }
	_ = json.Unmarshal(s.must("POST", "/app_pkgm/v1/onboarded_app_packages", map[string]any{"appPkgName": "echo", "appPkgVersion": "1",
		"checksum": map[string]any{"algorithm": "SHA-256", "hash": hex.EncodeToString(sum[:])}}, http.StatusCreated), &pkg)
	s.must("PUT", "/app_pkgm/v1/onboarded_app_packages/"+pkg.ID+"/package_content", zip, http.StatusAccepted)
	var info struct {
		AppDID string `json:"appDId"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for info.AppDID == "" && time.Now().Before(deadline) {
		_ = json.Unmarshal(s.must("GET", "/app_pkgm/v1/onboarded_app_packages/"+pkg.ID, nil, http.StatusOK), &info)
		time.Sleep(20 * time.Millisecond)
	}
	var in struct{ ID string }
	_ = json.Unmarshal(s.must("POST", "/app_lcm/v1/app_instances", map[string]any{"appDId": info.AppDID}, http.StatusCreated), &in)
	resp, _ := s.do(adminToken, "POST", "/app_lcm/v1/app_instances/"+in.ID+"/instantiate", map[string]any{}, "application/json")
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("instantiate: %d", resp.StatusCode)
	}
	opPath := resp.Header.Get("Location")[strings.Index(resp.Header.Get("Location"), "/app_lcm/"):]
	_ = json.Unmarshal(a.next("desired").Body, &ds)
	if len(ds.Instances) != 1 || ds.Instances[0].ID != in.ID || ds.Instances[0].State != "Running" {
		t.Fatalf("pushed desired state %+v", ds)
	}

	// The image is served to this host's agent, not to another's.
	if r, b := s.do(s.token("h1", "agent"), "GET", "/api/v1/hosts/h1/app_instances/"+in.ID+"/image", nil, ""); r.StatusCode != http.StatusOK ||
		!strings.HasPrefix(string(b), "#!/bin/sh") || r.Header.Get("X-Mecorch-Image-Name") != "edge-echo.sh" {
		t.Fatalf("image: %d %v %.40q", r.StatusCode, r.Header, b)
	}
	if r, _ := s.do(s.token("h9", "agent"), "GET", "/api/v1/hosts/h1/app_instances/"+in.ID+"/image", nil, ""); r.StatusCode != http.StatusNotFound {
		t.Fatalf("another agent read the image: %d", r.StatusCode)
	}

	a.send("status", 2, map[string]any{"hostId": "h1", "generation": ds.Generation,
		"agentVersion": "test-1", "instances": []any{map[string]any{"id": in.ID, "state": "Running", "address": "10.200.0.2"}}})
	var op struct{ OperationState string }
	for deadline := time.Now().Add(10 * time.Second); op.OperationState != "COMPLETED" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_ = json.Unmarshal(s.must("GET", opPath, nil, http.StatusOK), &op)
	}
	if op.OperationState != "COMPLETED" {
		t.Fatalf("op after the report: %+v", op)
	}
	var ag struct {
		HostID     string `json:"hostId"`
		LastReport struct {
			Instances []struct{ Address string } `json:"instances"`
		} `json:"lastReport"`
	}
	_ = json.Unmarshal(s.must("GET", "/api/v1/agents/h1", nil, http.StatusOK), &ag)
	if ag.HostID != "h1" || len(ag.LastReport.Instances) != 1 || ag.LastReport.Instances[0].Address != "10.200.0.2" {
		t.Fatalf("agent view %+v", ag)
	}
	_ = json.Unmarshal(s.must("GET", "/api/v1/hosts/h1", nil, http.StatusOK), &h)
	if h.AgentVersion != "test-1" {
		t.Errorf("host's agent version after its report: %q", h.AgentVersion)
	}
	a.send("heartbeat", 3, map[string]any{"time": time.Now().UTC(), "generation": ds.Generation})
}

// TestAgentChannelRefusesBadFrames: each kind of bad frame closes its
// connection with an error frame naming the problem, is counted, and a
// well-behaved agent's session next to it carries on.
func TestAgentChannelRefusesBadFrames(t *testing.T) {
	s := start(t, engines(t)["embedded"](t))
	s.must("POST", "/api/v1/sites", map[string]any{"id": "s1", "name": "one"}, http.StatusCreated)
	good, _, err := s.dialAgent(s.token("good", "agent"))
	if err != nil {
		t.Fatal(err)
	}
	good.send("hello", 1, hello("good", "s1"))
	good.next("desired")

	badTok := s.token("bad", "agent")
	cases := []struct {
		name string
		act  func(a *wsAgent)
		code string
	}{
		{"malformed", func(a *wsAgent) { a.sendRaw(`{"v":1,"type":"hello","body":{`) }, "badFrame"},
		{"wrong version", func(a *wsAgent) { a.sendRaw(`{"v":2,"type":"hello","body":{}}`) }, "badVersion"},
		{"oversized", func(a *wsAgent) {
			a.sendRaw(`{"v":1,"type":"hello","body":{"hostId":"` + strings.Repeat("x", 1<<20) + `"}}`)
		}, "tooLarge"},
		{"hello for another host", func(a *wsAgent) { a.send("hello", 1, hello("good", "s1")) }, "forbidden"},
		{"first frame not hello", func(a *wsAgent) { a.send("heartbeat", 1, map[string]any{"time": time.Now(), "generation": 0}) }, "unexpected"},
		{"status for another host", func(a *wsAgent) {
			a.send("hello", 1, hello("bad", "s1"))
			a.next("desired")
			a.send("status", 2, map[string]any{"hostId": "good", "generation": 0, "instances": []any{}})
		}, "forbidden"},
		{"orchestrator's frame from an agent", func(a *wsAgent) {
			a.send("hello", 1, hello("bad", "s1"))
			a.next("desired")
			a.send("desired", 2, map[string]any{"hostId": "bad", "generation": 0, "instances": []any{}})
		}, "unexpected"},
		{"unknown field", func(a *wsAgent) {
			a.send("hello", 1, map[string]any{"hostId": "bad", "siteId": "s1", "capacity": map[string]any{}, "bogus": true})
		}, "badFrame"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, _, err := s.dialAgent(badTok)
			if err != nil {
				t.Fatal(err)
			}
			a.t = t
			c.act(a)
			a.closedWith(c.code)
		})
	}
	// The good agent's session is untouched: it still reports and still
	// gets what mecorch pushes.
	good.send("heartbeat", 2, map[string]any{"time": time.Now().UTC(), "generation": 0})
	good.send("status", 3, map[string]any{"hostId": "good", "generation": 0, "instances": []any{}})
	var list []struct{ HostID string }
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_ = json.Unmarshal(s.must("GET", "/api/v1/agents", nil, http.StatusOK), &list)
		if len(list) == 1 && list[0].HostID == "good" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions after the bad ones: %+v", list)
		}
	}
	_, metrics := s.do(adminToken, "GET", "/metrics", nil, "")
	for _, code := range []string{"badFrame", "badVersion", "tooLarge", "forbidden", "unexpected"} {
		if !strings.Contains(string(metrics), `mecorch_agent_frames_refused_total{code="`+code+`"}`) {
			t.Errorf("no refusal counted for %s", code)
		}
	}
}

// TestAgentChannelAfterRevocationAndDeletion: a revoked credential's
// session is closed at the next resync; a host deleted by an operator is
// not brought back by its agent reconnecting.
func TestAgentChannelAfterRevocationAndDeletion(t *testing.T) {
	s := start(t, engines(t)["embedded"](t), func(c *etsiapi.Config) { c.Agents.Resync = 100 * time.Millisecond })
	s.must("POST", "/api/v1/sites", map[string]any{"id": "s1", "name": "one"}, http.StatusCreated)

	var c struct{ ClientID, ClientSecret string }
	_ = json.Unmarshal(s.must("POST", "/api/v1/clients", map[string]any{"name": "h1", "role": "agent"}, http.StatusCreated), &c)
	a, _, err := s.dialAgent(s.tokenFor(c.ClientID, c.ClientSecret))
	if err != nil {
		t.Fatal(err)
	}
	a.send("hello", 1, hello("h1", "s1"))
	a.next("desired")
	s.must("DELETE", "/api/v1/clients/"+c.ClientID, nil, http.StatusNoContent)
	a.closedWith("forbidden")

	tok := s.token("h2", "agent")
	b, _, err := s.dialAgent(tok)
	if err != nil {
		t.Fatal(err)
	}
	b.send("hello", 1, hello("h2", "s1"))
	b.next("desired")
	s.must("DELETE", "/api/v1/hosts/h2", nil, http.StatusNoContent)
	b.closedWith("refused")
	again, _, err := s.dialAgent(tok)
	if err != nil {
		t.Fatal(err)
	}
	again.send("hello", 1, hello("h2", "s1"))
	again.closedWith("refused")
	s.must("GET", "/api/v1/hosts/h2", nil, http.StatusNotFound)
}

// TestAgentChannelPathAlarms: a transport path reported down raises an
// alarm on that path; reported up again, or the session ending, clears it.
func TestAgentChannelPathAlarms(t *testing.T) {
	s := start(t, engines(t)["embedded"](t))
	s.must("POST", "/api/v1/sites", map[string]any{"id": "s1", "name": "one"}, http.StatusCreated)
	a, _, err := s.dialAgent(s.token("h1", "agent"))
	if err != nil {
		t.Fatal(err)
	}
	a.send("hello", 1, hello("h1", "s1"))
	a.next("desired")
	paths := func(state2 string) map[string]any {
		return map[string]any{"paths": []any{
			map[string]any{"local": "10.0.0.2", "remote": "10.0.0.1", "state": "Active", "srttMicros": 800},
			map[string]any{"local": "10.1.0.2", "remote": "10.1.0.1", "state": state2, "srttMicros": 0},
		}}
	}
	type alarm struct{ ManagedObjectID, ProbableCause, PerceivedSeverity string }
	active := func() []alarm {
		var out []alarm
		_ = json.Unmarshal(s.must("GET", "/api/v1/alarms?state=active", nil, http.StatusOK), &out)
		return out
	}
	waitAlarms := func(n int) []alarm {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := active()
			if len(got) == n {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("active alarms %+v, want %d", got, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	a.send("paths", 2, paths("Inactive"))
	got := waitAlarms(1)
	if got[0].ManagedObjectID != "h1/path/10.1.0.2-10.1.0.1" || got[0].ProbableCause != "transportPathDown" || got[0].PerceivedSeverity != "MAJOR" {
		t.Fatalf("path alarm %+v", got[0])
	}
	a.send("paths", 3, paths("Active"))
	waitAlarms(0)
	a.send("paths", 4, paths("Inactive"))
	waitAlarms(1)
	a.conn.Close()
	waitAlarms(0)
}

// TestAgentChannelProbes: agents that advertise a STAMP reflector get probe
// plans naming each other and the cells of the sites, their RTT reports
// land in the map, and the operator API serves the map, a pair and its
// history, and each agent's plan.
func TestAgentChannelProbes(t *testing.T) {
	s := start(t, engines(t)["embedded"](t))
	s.must("POST", "/api/v1/sites", map[string]any{"id": "s1", "name": "one"}, http.StatusCreated)
	s.must("POST", "/api/v1/sites", map[string]any{"id": "s2", "name": "two"}, http.StatusCreated)
	var cell struct{ ID string }
	_ = json.Unmarshal(s.must("POST", "/api/v1/cells", map[string]any{"nrcgi": map[string]any{"plmn": map[string]string{"mcc": "001", "mnc": "01"},
		"nrcellId": "00000000A"}, "siteId": "s2", "ranAddress": "10.2.0.1"}, http.StatusCreated), &cell)

	connect := func(host, site string) *wsAgent {
		a, _, err := s.dialAgent(s.token(host, "agent"))
		if err != nil {
			t.Fatal(err)
		}
		h := hello(host, site)
		h["probeAddr"] = ":862" // mecorch fills in the address it sees
		a.send("hello", 1, h)
		a.next("welcome")
		return a
	}
	type plan struct {
		Targets    []struct{ ID, Kind, Addr string } `json:"targets"`
		IntervalMs int64                             `json:"intervalMs"`
		WindowMs   int64                             `json:"windowMs"`
	}
	// planWith reads plans until one names every target in want.
	planWith := func(a *wsAgent, want ...string) plan {
		t.Helper()
		for {
			var p plan
			_ = json.Unmarshal(a.next("probePlan").Body, &p)
			got := map[string]string{}
			for _, tg := range p.Targets {
				got[tg.Kind+"/"+tg.ID] = tg.Addr
			}
			ok := true
			for _, w := range want {
				ok = ok && got[w] != ""
			}
			if ok {
				return p
			}
		}
	}
	a1 := connect("h1", "s1")
	p := planWith(a1, "cell/"+cell.ID)
	if p.IntervalMs <= 0 || p.WindowMs <= 0 {
		t.Fatalf("plan %+v", p)
	}
	for _, tg := range p.Targets {
		if tg.ID == cell.ID && tg.Addr != "10.2.0.1:862" {
			t.Errorf("cell target %+v: want the RAN address and the STAMP port", tg)
		}
	}
	connect("h2", "s2")
	p = planWith(a1, "host/h2", "cell/"+cell.ID)
	for _, tg := range p.Targets {
		if tg.ID == "h2" && tg.Addr != "127.0.0.1:862" {
			t.Errorf("peer target %+v: want the address h2 connects from, with its port", tg)
		}
		if tg.ID == "h1" {
			t.Errorf("h1 is told to probe itself: %+v", p)
		}
	}

	now := time.Now().UTC()
	stats := func(p50 time.Duration) map[string]any {
		return map[string]any{"sent": 100, "lost": 1, "loss": 0.01, "minNs": p50 - 100_000, "p50Ns": p50, "p95Ns": p50 + 200_000,
			"p99Ns": p50 + 300_000, "jitterNs": 20_000, "source": "kernel", "from": now.Add(-10 * time.Second), "to": now}
	}
	a1.send("rtt", 2, map[string]any{"results": []any{
		map[string]any{"target": cell.ID, "kind": "cell", "stats": stats(3 * time.Millisecond)},
		map[string]any{"target": "h2", "kind": "host", "stats": stats(8 * time.Millisecond)},
	}})
	var e struct {
		RTTNs     int64    `json:"rttNs"`
		Quality   string   `json:"quality"`
		Reporters []string `json:"reporters"`
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.Quality != "measured" && time.Now().Before(deadline) {
		_ = json.Unmarshal(s.must("GET", "/api/v1/rtt/cell_site/"+cell.ID+"/s1", nil, http.StatusOK), &e)
		time.Sleep(20 * time.Millisecond)
	}
	if e.Quality != "measured" || e.RTTNs != 3_000_000 || len(e.Reporters) != 1 || e.Reporters[0] != "h1" {
		t.Fatalf("cell–site entry %+v", e)
	}
	_ = json.Unmarshal(s.must("GET", "/api/v1/rtt/site_site/s2/s1", nil, http.StatusOK), &e)
	if e.Quality != "measured" || e.RTTNs != 8_000_000 {
		t.Fatalf("site–site entry %+v", e)
	}
	// The cell seen from its own site is not measured: nobody probed it
	// from s2, and there is no estimate to offer either.
	_ = json.Unmarshal(s.must("GET", "/api/v1/rtt/cell_site/"+cell.ID+"/s2", nil, http.StatusOK), &e)
	if e.Quality == "measured" {
		t.Fatalf("an unprobed pair is measured: %+v", e)
	}
	var m struct {
		FreshNs int64 `json:"freshNs"`
		Entries []struct {
			Kind, A, B string
		} `json:"entries"`
	}
	_ = json.Unmarshal(s.must("GET", "/api/v1/rtt?kind=cellSite", nil, http.StatusOK), &m)
	if m.FreshNs <= 0 || len(m.Entries) != 1 || m.Entries[0].A != cell.ID || m.Entries[0].B != "s1" {
		t.Fatalf("map filtered to cellSite: %+v", m)
	}
	var hist []struct {
		Host  string `json:"host"`
		Stats struct {
			P50Ns int64 `json:"p50Ns"`
		} `json:"stats"`
	}
	_ = json.Unmarshal(s.must("GET", "/api/v1/rtt/site_site/s2/s1/history", nil, http.StatusOK), &hist)
	if len(hist) != 1 || hist[0].Host != "h1" || hist[0].Stats.P50Ns != 8_000_000 {
		t.Fatalf("history %+v", hist)
	}
	// A report the map cannot take (a negative jitter: a broken clock) is
	// dropped; the session, which carries the host's desired state, goes
	// on, and the next good report lands.
	a1.send("rtt", 3, map[string]any{"results": []any{map[string]any{"target": "h2", "kind": "host",
		"stats": map[string]any{"sent": 1, "lost": 0, "loss": 0, "p50Ns": 1, "p95Ns": 1, "p99Ns": 1, "jitterNs": -5, "from": now, "to": now}}}})
	a1.send("rtt", 4, map[string]any{"results": []any{map[string]any{"target": "h2", "kind": "host", "stats": stats(9 * time.Millisecond)}}})
	deadline = time.Now().Add(5 * time.Second)
	for e.RTTNs != 9_000_000 && time.Now().Before(deadline) {
		_ = json.Unmarshal(s.must("GET", "/api/v1/rtt/site_site/s1/s2", nil, http.StatusOK), &e)
		time.Sleep(20 * time.Millisecond)
	}
	if e.RTTNs != 9_000_000 {
		t.Fatalf("the report after a bad one did not land: %+v", e)
	}
	var served plan
	_ = json.Unmarshal(s.must("GET", "/api/v1/rtt/plans/h1", nil, http.StatusOK), &served)
	if len(served.Targets) != len(p.Targets) {
		t.Errorf("served plan %+v, sent %+v", served, p)
	}
	resp, body := s.do(adminToken, "GET", "/api/v1/rtt?colour=red", nil, "")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"colour"`) {
		t.Errorf("unknown query parameter: %d %s", resp.StatusCode, body)
	}
	if resp, _ := s.do(s.token("h1", "agent"), "GET", "/api/v1/rtt", nil, ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an agent read the RTT map: %d", resp.StatusCode)
	}
}

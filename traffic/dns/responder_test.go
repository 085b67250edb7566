package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

// fakeResolver stands in for the operator's resolver: a real DNS server on loopback (UDP and TCP on
// one port) that answers every A query with centralAddr, "big.example." with many records, and
// remembers what it last received so tests can see what was forwarded.
type fakeResolver struct {
	addr  string
	mu    sync.Mutex
	last  *mdns.Msg
	count atomic.Int64
}

const centralAddr = "198.51.100.7"

func startFakeResolver(t *testing.T) *fakeResolver {
	t.Helper()
	udp, tcp, err := listenBoth("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeResolver{addr: udp.LocalAddr().String()}
	h := mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		f.count.Add(1)
		f.mu.Lock()
		f.last = req.Copy()
		f.mu.Unlock()
		resp := new(mdns.Msg)
		resp.SetReply(req)
		resp.RecursionAvailable = true
		q := req.Question[0]
		switch {
		case q.Name == "big.example." && q.Qtype == mdns.TypeA:
			for i := range 60 {
				resp.Answer = append(resp.Answer, mustRR(t, fmt.Sprintf("big.example. 60 IN A 203.0.113.%d", i+1)))
			}
		case q.Name == "nx.example.":
			resp.Rcode = mdns.RcodeNameError
		case q.Qtype == mdns.TypeA:
			resp.Answer = append(resp.Answer, mustRR(t, q.Name+" 300 IN A "+centralAddr))
		}
		// Echo the client's EDNS options so pass-through is visible in the answer.
		if opt := req.IsEdns0(); opt != nil {
			o := &mdns.OPT{Hdr: mdns.RR_Header{Name: ".", Rrtype: mdns.TypeOPT}}
			o.SetUDPSize(4096)
			o.SetDo(opt.Do())
			o.Option = opt.Option
			resp.Extra = append(resp.Extra, o)
		}
		// This server does not truncate on its own; the responder must.
		_ = w.WriteMsg(resp)
	})
	startServers(t, h, udp, tcp)
	return f
}

func (f *fakeResolver) lastQuery() *mdns.Msg {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func startServers(t *testing.T, h mdns.Handler, udp net.PacketConn, tcp net.Listener) {
	t.Helper()
	for _, s := range []*mdns.Server{{PacketConn: udp, Handler: h}, {Listener: tcp, Handler: h}} {
		started := make(chan struct{})
		s.NotifyStartedFunc = func() { close(started) }
		go func() { _ = s.ActivateAndServe() }()
		<-started
		t.Cleanup(func() { _ = s.Shutdown() })
	}
}

func mustRR(t *testing.T, s string) mdns.RR {
	rr, err := mdns.NewRR(s)
	if err != nil {
		t.Fatalf("NewRR(%q): %v", s, err)
	}
	return rr
}

// startResponder runs a responder on loopback until the test ends and checks Run returns nil.
func startResponder(t *testing.T, cfg Config, rules []Rule) *Responder {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.SetRules(rules); err != nil {
		r.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

func query(t *testing.T, netw, addr, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	return exchange(t, netw, addr, m)
}

func exchange(t *testing.T, netw, addr string, m *mdns.Msg) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: netw, Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s query %s: %v", netw, m.Question[0].String(), err)
	}
	return resp
}

var edgeRules = []Rule{
	{ID: "r1", DomainName: "App.Example.COM", IPAddressType: IPv4, IPAddress: "10.45.0.10", TTL: 120, State: Active},
	{ID: "r2", DomainName: "app.example.com.", IPAddressType: IPv6, IPAddress: "2001:db8::10", State: Active},
	{ID: "r3", DomainName: "v4only.example.", IPAddressType: IPv4, IPAddress: "10.45.0.11", State: Active},
	{ID: "r4", DomainName: "v6only.example.", IPAddressType: IPv6, IPAddress: "2001:db8::11", TTL: 5, State: Active},
	{ID: "r5", DomainName: "parked.example.", IPAddressType: IPv4, IPAddress: "10.45.0.12", State: Inactive},
}

func answerA(t *testing.T, resp *mdns.Msg) (string, uint32) {
	t.Helper()
	if resp.Rcode != mdns.RcodeSuccess || len(resp.Answer) != 1 {
		t.Fatalf("want one answer, got rcode %s, %v", mdns.RcodeToString[resp.Rcode], resp.Answer)
	}
	switch rr := resp.Answer[0].(type) {
	case *mdns.A:
		return rr.A.String(), rr.Hdr.Ttl
	case *mdns.AAAA:
		return rr.AAAA.String(), rr.Hdr.Ttl
	}
	t.Fatalf("unexpected record %v", resp.Answer[0])
	return "", 0
}

func TestLocalAnswers(t *testing.T) {
	up := startFakeResolver(t)
	r := startResponder(t, Config{Upstream: []string{up.addr}}, edgeRules)
	cases := []struct {
		name     string
		qname    string
		qtype    uint16
		wantAddr string
		wantTTL  uint32
	}{
		{"A with rule TTL", "app.example.com.", mdns.TypeA, "10.45.0.10", 120},
		{"AAAA with default TTL", "app.example.com.", mdns.TypeAAAA, "2001:db8::10", DefaultTTL},
		{"mixed case", "aPP.eXAMPLE.com.", mdns.TypeA, "10.45.0.10", 120},
		{"rule written with trailing dot", "V4ONLY.example.", mdns.TypeA, "10.45.0.11", DefaultTTL},
		{"AAAA own TTL", "v6only.example.", mdns.TypeAAAA, "2001:db8::11", 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := query(t, "udp", r.Addr(), tc.qname, tc.qtype)
			addr, ttl := answerA(t, resp)
			if addr != tc.wantAddr || ttl != tc.wantTTL {
				t.Errorf("got %s ttl %d, want %s ttl %d", addr, ttl, tc.wantAddr, tc.wantTTL)
			}
			if got := resp.Answer[0].Header().Name; got != tc.qname {
				t.Errorf("owner name %q, want the question as asked %q", got, tc.qname)
			}
			if !resp.Authoritative {
				t.Error("local answer not marked authoritative")
			}
		})
	}
	if n := up.count.Load(); n != 0 {
		t.Errorf("upstream asked %d times for names the rules own", n)
	}
	if c := r.Counters(); c.Local != uint64(len(cases)) || c.Forwarded != 0 {
		t.Errorf("counters %+v", c)
	}
}

func TestNoDataForOtherFamily(t *testing.T) {
	up := startFakeResolver(t)
	r := startResponder(t, Config{Upstream: []string{up.addr}}, edgeRules)
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"v4only.example.", mdns.TypeAAAA}, {"v6only.example.", mdns.TypeA}, {"app.example.com.", mdns.TypeHTTPS}} {
		resp := query(t, "udp", r.Addr(), q.name, q.qtype)
		if resp.Rcode != mdns.RcodeSuccess || len(resp.Answer) != 0 {
			t.Errorf("%s %s: want NODATA, got %s with %v",
				q.name, mdns.TypeToString[q.qtype], mdns.RcodeToString[resp.Rcode], resp.Answer)
		}
	}
	if n := up.count.Load(); n != 0 {
		t.Errorf("upstream asked %d times; NODATA must come from the rules", n)
	}
}

func TestForwardPreservesIDAndContent(t *testing.T) {
	up := startFakeResolver(t)
	r := startResponder(t, Config{Upstream: []string{up.addr}}, edgeRules)
	m := new(mdns.Msg)
	m.SetQuestion("www.example.org.", mdns.TypeA)
	m.Id = 0xBEEF
	resp := exchange(t, "udp", r.Addr(), m)
	if resp.Id != 0xBEEF {
		t.Errorf("id %#x, want 0xbeef", resp.Id)
	}
	addr, ttl := answerA(t, resp)
	if addr != centralAddr || ttl != 300 {
		t.Errorf("got %s ttl %d, want the upstream's %s ttl 300", addr, ttl, centralAddr)
	}
	nx := query(t, "udp", r.Addr(), "nx.example.", mdns.TypeA)
	if nx.Rcode != mdns.RcodeNameError {
		t.Errorf("upstream NXDOMAIN relayed as %s", mdns.RcodeToString[nx.Rcode])
	}
	if c := r.Counters(); c.Forwarded != 2 || c.Local != 0 {
		t.Errorf("counters %+v", c)
	}
}

func TestEDNSPassesThrough(t *testing.T) {
	up := startFakeResolver(t)
	r := startResponder(t, Config{Upstream: []string{up.addr}}, edgeRules)
	m := new(mdns.Msg)
	m.SetQuestion("www.example.org.", mdns.TypeA)
	m.SetEdns0(1400, true)
	cookie := &mdns.EDNS0_COOKIE{Code: mdns.EDNS0COOKIE, Cookie: "0102030405060708"}
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, cookie)
	resp := exchange(t, "udp", r.Addr(), m)

	seen := up.lastQuery().IsEdns0()
	if seen == nil || seen.UDPSize() != 1400 || !seen.Do() || len(seen.Option) != 1 {
		t.Fatalf("upstream saw OPT %v, want the client's (1400, DO, cookie)", seen)
	}
	got := resp.IsEdns0()
	if got == nil || !got.Do() || len(got.Option) != 1 || got.Option[0].String() != cookie.String() {
		t.Errorf("client got OPT %v, want the upstream's with the cookie", got)
	}
	// A local answer to an EDNS query carries OPT too (RFC 6891 §6.1.1).
	m.SetQuestion("app.example.com.", mdns.TypeA)
	if local := exchange(t, "udp", r.Addr(), m); local.IsEdns0() == nil {
		t.Error("local answer to an EDNS query has no OPT")
	}
}

func TestUpstreamDownIsServfail(t *testing.T) {
	// A bound socket nobody reads: queries vanish, as with a resolver behind a dead link.
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	// A port with nothing on it: the kernel answers port unreachable.
	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.LocalAddr().String()
	closed.Close()

	timeout := 300 * time.Millisecond
	r := startResponder(t, Config{Upstream: []string{silent.LocalAddr().String(), closedAddr}, Timeout: timeout}, edgeRules)
	// The client waits far longer than Timeout: an answer at all shows the responder gave up on its own.
	resp := query(t, "udp", r.Addr(), "www.example.org.", mdns.TypeA)
	if resp.Rcode != mdns.RcodeServerFailure {
		t.Errorf("rcode %s, want SERVFAIL", mdns.RcodeToString[resp.Rcode])
	}
	// Names with rules are still answered while upstreams are down.
	if addr, _ := answerA(t, query(t, "udp", r.Addr(), "app.example.com.", mdns.TypeA)); addr != "10.45.0.10" {
		t.Errorf("local answer %s during upstream outage", addr)
	}
	if c := r.Counters(); c.UpstreamFailures != 1 || c.Local != 1 {
		t.Errorf("counters %+v", c)
	}
}

func TestSilentUpstreamDoesNotStarveNext(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	up := startFakeResolver(t)
	r := startResponder(t, Config{Upstream: []string{silent.LocalAddr().String(), up.addr}, Timeout: time.Second}, nil)
	if addr, _ := answerA(t, query(t, "udp", r.Addr(), "www.example.org.", mdns.TypeA)); addr != centralAddr {
		t.Errorf("got %s, want the second upstream's answer", addr)
	}
}

func TestNoUpstreamRefuses(t *testing.T) {
	r := startResponder(t, Config{}, edgeRules)
	if resp := query(t, "udp", r.Addr(), "www.example.org.", mdns.TypeA); resp.Rcode != mdns.RcodeRefused {
		t.Errorf("rcode %s, want REFUSED", mdns.RcodeToString[resp.Rcode])
	}
	if c := r.Counters(); c.Refused != 1 {
		t.Errorf("counters %+v", c)
	}
}

func TestInactiveRuleIsForwarded(t *testing.T) {
	up := startFakeResolver(t)
	r := startResponder(t, Config{Upstream: []string{up.addr}}, edgeRules)
	if addr, _ := answerA(t, query(t, "udp", r.Addr(), "parked.example.", mdns.TypeA)); addr != centralAddr {
		t.Errorf("INACTIVE rule answered %s, want the upstream's %s", addr, centralAddr)
	}
}

func TestBadRuleSetKeepsOldTable(t *testing.T) {
	up := startFakeResolver(t)
	r := startResponder(t, Config{Upstream: []string{up.addr}}, edgeRules)
	bad := []Rule{
		{ID: "n1", DomainName: "app.example.com", IPAddressType: IPv4, IPAddress: "10.45.0.99", State: Active},
		{ID: "n2", DomainName: "other.example", IPAddressType: IPv4, IPAddress: "2001:db8::1", State: Active},
	}
	err := r.SetRules(bad)
	var inv *InvalidRulesError
	if !errors.As(err, &inv) || len(inv.Problems) != 1 || inv.Problems[0].Field != "rules[1].ipAddress" {
		t.Fatalf("SetRules error %v, want one problem at rules[1].ipAddress", err)
	}
	if addr, _ := answerA(t, query(t, "udp", r.Addr(), "app.example.com.", mdns.TypeA)); addr != "10.45.0.10" {
		t.Errorf("after a rejected set, answered %s; want the old table's 10.45.0.10", addr)
	}
}

func TestTCP(t *testing.T) {
	up := startFakeResolver(t)
	r := startResponder(t, Config{Upstream: []string{up.addr}}, edgeRules)
	if addr, _ := answerA(t, query(t, "tcp", r.Addr(), "app.example.com.", mdns.TypeA)); addr != "10.45.0.10" {
		t.Errorf("local over TCP: %s", addr)
	}
	if addr, _ := answerA(t, query(t, "tcp", r.Addr(), "www.example.org.", mdns.TypeA)); addr != centralAddr {
		t.Errorf("forwarded over TCP: %s", addr)
	}
	if up.lastQuery() == nil {
		t.Fatal("upstream saw nothing")
	}
}

func TestTruncationThenTCP(t *testing.T) {
	up := startFakeResolver(t)
	r := startResponder(t, Config{Upstream: []string{up.addr}}, edgeRules)

	small := query(t, "udp", r.Addr(), "big.example.", mdns.TypeA)
	if !small.Truncated {
		t.Fatalf("UDP answer without EDNS not truncated (%d records)", len(small.Answer))
	}
	// Repacked as sent, with name compression (the client's 512-byte read buffer already enforced it).
	small.Compress = true
	if packed, err := small.Pack(); err != nil || len(packed) > mdns.MinMsgSize {
		t.Errorf("truncated answer is %d bytes (err %v), over 512", len(packed), err)
	}
	full := query(t, "tcp", r.Addr(), "big.example.", mdns.TypeA)
	if full.Truncated || len(full.Answer) != 60 {
		t.Errorf("TCP retry: truncated=%v, %d records, want all 60", full.Truncated, len(full.Answer))
	}
	m := new(mdns.Msg)
	m.SetQuestion("big.example.", mdns.TypeA)
	m.SetEdns0(4096, false)
	if edns := exchange(t, "udp", r.Addr(), m); edns.Truncated || len(edns.Answer) != 60 {
		t.Errorf("UDP with EDNS 4096: truncated=%v, %d records, want all 60", edns.Truncated, len(edns.Answer))
	}
}

func TestConcurrentQueriesWhileSwapping(t *testing.T) {
	up := startFakeResolver(t)
	setA := []Rule{{ID: "a", DomainName: "swap.example", IPAddressType: IPv4, IPAddress: "10.45.1.1", State: Active}}
	setB := []Rule{{ID: "b", DomainName: "swap.example", IPAddressType: IPv4, IPAddress: "10.45.2.2", State: Active}}
	r := startResponder(t, Config{Upstream: []string{up.addr}}, setA)

	ctx, cancel := context.WithCancel(context.Background())
	var swaps sync.WaitGroup
	swaps.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			set := setA
			if i%2 == 1 {
				set = setB
			}
			if err := r.SetRules(set); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var clients sync.WaitGroup
	for w := range 8 {
		clients.Go(func() {
			netw := "udp"
			if w%4 == 0 {
				netw = "tcp"
			}
			for range 50 {
				addr, _ := answerA(t, query(t, netw, r.Addr(), "swap.example.", mdns.TypeA))
				if addr != "10.45.1.1" && addr != "10.45.2.2" {
					t.Errorf("answer %s is from neither rule set", addr)
				}
			}
		})
	}
	clients.Wait()
	cancel()
	swaps.Wait()
	if c := r.Counters(); c.Local != 400 {
		t.Errorf("counters %+v, want 400 local", c)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Listen: "no-port"},
		{Listen: "127.0.0.1:0", Upstream: []string{"8.8.8.8"}},
		{Listen: "127.0.0.1:0", Timeout: -time.Second},
	} {
		if r, err := New(cfg); err == nil {
			r.Close()
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
}

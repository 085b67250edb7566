package agent

import (
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	mdns "github.com/miekg/dns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/traffic/classify"
	"github.com/mecorch/mecorch/traffic/netns"
)

const ueResolver = "10.100.2.53"

// dnsLab is the agent's host namespace and a UE namespace behind it, the
// UE's DNS going to ueResolver through the host (as a steered packet
// would leave the classifier towards the responder).
type dnsLab struct {
	dir, host, ue string
}

func newDNSLab(t *testing.T) dnsLab {
	t.Helper()
	needRoot(t)
	dir := t.TempDir()
	t.Cleanup(func() {
		names, _ := netns.List(dir, "")
		for _, n := range names {
			if err := netns.Delete(dir, n); err != nil {
				t.Error(err)
			}
		}
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	})
	l := dnsLab{dir: dir}
	var err error
	l.host, err = netns.Create(dir, "host")
	must(t, err)
	l.ue, err = netns.Create(dir, "ue")
	must(t, err)
	h, err := netns.Handle(l.host)
	must(t, err)
	defer h.Close()
	fd, err := netns.Open(l.ue)
	must(t, err)
	defer fd.Close()
	must(t, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uehost"}, PeerName: "ue0", PeerNamespace: netlink.NsFd(int(fd))}))
	uh, err := netns.Handle(l.ue)
	must(t, err)
	defer uh.Close()
	for _, e := range []struct {
		h          *netlink.Handle
		name, addr string
	}{{h, "uehost", "10.45.0.1/24"}, {uh, "ue0", "10.45.0.2/24"}, {uh, "lo", "127.0.0.1/8"}} {
		lk, err := e.h.LinkByName(e.name)
		must(t, err)
		must(t, e.h.AddrReplace(lk, &netlink.Addr{IPNet: prefixNet(netip.MustParsePrefix(e.addr))}))
		must(t, e.h.LinkSetUp(lk))
	}
	ue0, err := uh.LinkByName("ue0")
	must(t, err)
	must(t, uh.RouteReplace(&netlink.Route{LinkIndex: ue0.Attrs().Index, Dst: prefixNet(netip.MustParsePrefix("0.0.0.0/0")),
		Gw: net.ParseIP("10.45.0.1")}))
	must(t, netns.SetSysctl(l.host, "net.ipv4.ip_forward", "1"))
	return l
}

// routeToEdge sends the host's packets for the resolver address to the
// responder's end of its veth.
func (l dnsLab) routeToEdge(t *testing.T, d *dnsEdge) {
	t.Helper()
	h, err := netns.Handle(l.host)
	must(t, err)
	defer h.Close()
	must(t, h.RouteReplace(&netlink.Route{LinkIndex: d.HostIfindex(), Dst: prefixNet(netip.MustParsePrefix(ueResolver + "/32")),
		Gw: dnsNsSide4().Addr().AsSlice()}))
}

// fakeUpstream is a DNS server (UDP) on 127.0.0.1 of the namespace it is
// started in, answering every A query with addr.
type fakeUpstream struct {
	addr    string
	queries atomic.Int64
}

func startUpstream(t *testing.T, nsPath, listen, answer string) *fakeUpstream {
	t.Helper()
	var pc net.PacketConn
	must(t, netns.Do(nsPath, func() (err error) {
		pc, err = net.ListenPacket("udp", listen)
		return err
	}))
	u := &fakeUpstream{addr: pc.LocalAddr().String()}
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, req *mdns.Msg) {
		u.queries.Add(1)
		m := new(mdns.Msg)
		m.SetReply(req)
		if q := req.Question[0]; q.Qtype == mdns.TypeA {
			rr, err := mdns.NewRR(q.Name + " 300 IN A " + answer)
			if err == nil {
				m.Answer = append(m.Answer, rr)
			}
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return u
}

// ask sends one query from inside nsPath to the UE resolver address.
func ask(t *testing.T, nsPath, transport, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	c := &mdns.Client{Net: transport, Timeout: 3 * time.Second}
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	var r *mdns.Msg
	// The dial happens on Do's thread, in the UE's namespace.
	must(t, netns.Do(nsPath, func() (err error) {
		r, _, err = c.Exchange(m, net.JoinHostPort(ueResolver, "53"))
		return err
	}))
	return r
}

func answers(r *mdns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch a := rr.(type) {
		case *mdns.A:
			out = append(out, a.A.String()+"/"+strconv.Itoa(int(a.Hdr.Ttl)))
		case *mdns.AAAA:
			out = append(out, a.AAAA.String()+"/"+strconv.Itoa(int(a.Hdr.Ttl)))
		}
	}
	return out
}

// TestDNSEdgeAnswersAndForwards: a UE asking the resolver address gets the
// rules' answers from the responder in its namespace, and the rest from the
// upstream, asked from the agent's own namespace: a decoy on the same
// address and port inside the responder's namespace is never asked.
func TestDNSEdgeAnswersAndForwards(t *testing.T) {
	l := newDNSLab(t)
	up := startUpstream(t, "", "127.0.0.1:0", "192.0.2.99")
	d, err := newDNSEdge(context.Background(), DNSConfig{
		Resolver: netip.MustParseAddr(ueResolver), Upstream: []string{up.addr},
		NetnsDir: l.dir, NetnsName: "dnsedge", HostNetns: l.host, Logger: slog.New(slog.DiscardHandler),
	})
	must(t, err)
	closed := false
	defer func() {
		if !closed {
			_ = d.close()
		}
	}()
	decoy := startUpstream(t, d.nsPath, up.addr, "192.0.2.66")
	l.routeToEdge(t, d)

	err = d.SetRules([]agentproto.DNSRule{
		{ID: "echo-dns", DomainName: "echo.mec.example", IPAddressType: "IP_V4", IPAddress: "10.0.0.7", TTL: 42},
		{ID: "broken", DomainName: "broken.mec.example", IPAddressType: "IP_V4", IPAddress: "10.0.0.300"},
		{ID: "echo-dns", DomainName: "Echo.mec.example.", IPAddressType: "IP_V4", IPAddress: "10.0.0.7", TTL: 42}, // a second instance of the app
		{ID: "echo-dns6", DomainName: "echo.mec.example", IPAddressType: "IP_V6", IPAddress: "fd00::7"},
		{ID: "other-app", DomainName: "echo.mec.example", IPAddressType: "IP_V4", IPAddress: "10.0.0.8"},
		{ID: "cam-dns", DomainName: "cam.mec.example", IPAddressType: "IP_V4", IPAddress: "10.0.0.11", TTL: 5},
	})
	t.Logf("SetRules: %v", err)
	if err == nil || !strings.Contains(err.Error(), `"broken"`) || strings.Contains(err.Error(), "echo-dns") || strings.Contains(err.Error(), "cam-dns") {
		t.Fatalf("SetRules: %v; want an error naming the invalid rule only", err)
	}

	for _, tc := range []struct {
		transport, name string
		qtype           uint16
		want            []string
	}{
		{"udp", "echo.mec.example", mdns.TypeA, []string{"10.0.0.7/42"}},
		{"tcp", "echo.mec.example", mdns.TypeA, []string{"10.0.0.7/42"}},
		{"udp", "echo.mec.example", mdns.TypeAAAA, []string{"fd00::7/30"}}, // no ttl: traffic/dns's default
		{"udp", "cam.mec.example", mdns.TypeA, []string{"10.0.0.11/5"}},
		{"udp", "broken.mec.example", mdns.TypeA, []string{"192.0.2.99/300"}}, // skipped: not answered here
		{"udp", "www.example.org", mdns.TypeA, []string{"192.0.2.99/300"}},
	} {
		r := ask(t, l.ue, tc.transport, tc.name, tc.qtype)
		if got := answers(r); r.Rcode != mdns.RcodeSuccess || !slices.Equal(got, tc.want) {
			t.Errorf("%s %s %s: rcode %s, answers %v; want %v", tc.transport, tc.name, mdns.TypeToString[tc.qtype],
				mdns.RcodeToString[r.Rcode], got, tc.want)
		}
	}
	if n, nd := up.queries.Load(), decoy.queries.Load(); n != 2 || nd != 0 {
		t.Errorf("upstream in the agent's namespace got %d queries, the decoy in the responder's %d; want 2 and 0", n, nd)
	}
	if c := d.Counters(); c.Local != 4 || c.Forwarded != 2 {
		t.Errorf("counters %+v; want 4 local, 2 forwarded", c)
	}

	// A rule removed is no longer answered; the same set again is no work.
	must(t, d.SetRules([]agentproto.DNSRule{{ID: "cam-dns", DomainName: "cam.mec.example", IPAddressType: "IP_V4", IPAddress: "10.0.0.11", TTL: 5}}))
	if got := answers(ask(t, l.ue, "udp", "echo.mec.example", mdns.TypeA)); !slices.Equal(got, []string{"192.0.2.99/300"}) {
		t.Errorf("after the rule went: %v, want the upstream's answer", got)
	}
	applied := d.applied
	must(t, d.SetRules([]agentproto.DNSRule{{ID: "cam-dns", DomainName: "cam.mec.example", IPAddressType: "IP_V4", IPAddress: "10.0.0.11", TTL: 5}}))
	if &applied[0] != &d.applied[0] {
		t.Error("an unchanged rule set was set again")
	}

	// Close leaves no namespace and no veth behind.
	hostLink := d.hostLink
	must(t, d.close())
	closed = true
	must(t, d.close())
	if names, _ := netns.List(l.dir, "dnsedge"); len(names) != 0 || netns.IsMounted(d.nsPath) {
		t.Errorf("responder namespace left after close: %v", names)
	}
	if links, err := netns.Links(l.host, "", "veth"); err != nil || !slices.Equal(links, []string{"uehost"}) {
		t.Errorf("veths in the host namespace after close: %v (%v); want only the UE's (%s gone)", links, err, hostLink)
	}
}

// TestDNSEdgeReadopts: an agent that stopped without cleaning up (a crash)
// leaves the namespace and veth; the next one takes them over, with the
// same MAC (the classifier's Dest stays right), and serves.
func TestDNSEdgeReadopts(t *testing.T) {
	l := newDNSLab(t)
	cfg := DNSConfig{Resolver: netip.MustParseAddr("10.100.2.54"), NetnsDir: l.dir, NetnsName: "dnsedge", HostNetns: l.host}
	ctx, crash := context.WithCancel(context.Background())
	d1, err := newDNSEdge(ctx, cfg)
	must(t, err)
	crash()
	<-d1.done

	// The next agent was also given another UE resolver address.
	cfg.Resolver = netip.MustParseAddr(ueResolver)
	d2, err := newDNSEdge(context.Background(), cfg)
	must(t, err)
	defer func() { must(t, d2.close()) }()
	if d2.HostIfindex() != d1.HostIfindex() || d2.MAC().String() != d1.MAC().String() {
		t.Errorf("re-adopted veth: ifindex %d MAC %s, was %d %s", d2.HostIfindex(), d2.MAC(), d1.HostIfindex(), d1.MAC())
	}
	ph, err := netns.Handle(d2.nsPath)
	must(t, err)
	defer ph.Close()
	lo, err := ph.LinkByName("lo")
	must(t, err)
	addrs, err := ph.AddrList(lo, netlink.FAMILY_V4)
	must(t, err)
	var onLo []string
	for _, a := range addrs {
		onLo = append(onLo, a.IPNet.String())
	}
	if !slices.Equal(onLo, []string{"127.0.0.1/8", ueResolver + "/32"}) {
		t.Errorf("lo of the re-adopted namespace holds %v; want the loopback and the new resolver address only", onLo)
	}
	l.routeToEdge(t, d2)
	must(t, d2.SetRules([]agentproto.DNSRule{{ID: "r", DomainName: "echo.mec.example", IPAddressType: "IP_V4", IPAddress: "10.0.0.7"}}))
	if got := answers(ask(t, l.ue, "udp", "echo.mec.example", mdns.TypeA)); !slices.Equal(got, []string{"10.0.0.7/30"}) {
		t.Errorf("re-adopted responder answered %v", got)
	}
	// No upstream: names without a rule are refused, not forwarded.
	if r := ask(t, l.ue, "udp", "www.example.org", mdns.TypeA); r.Rcode != mdns.RcodeRefused {
		t.Errorf("without upstreams: rcode %s, want REFUSED", mdns.RcodeToString[r.Rcode])
	}
}

// TestDNSEdgeRefusesItselfAndBuildsItsRule: the resolver address is not
// taken as an upstream; the steering rule covers UDP and TCP to the resolver
// from the UE pools of its family, with a GTP_U twin, to the responder.
func TestDNSEdgeRefusesItselfAndBuildsItsRule(t *testing.T) {
	_, err := newDNSEdge(context.Background(), DNSConfig{Resolver: netip.MustParseAddr(ueResolver),
		Upstream: []string{"8.8.8.8:53", ueResolver + ":53"}, NetnsDir: t.TempDir(), NetnsName: "x"})
	if err == nil || !strings.Contains(err.Error(), "upstream[1]") {
		t.Errorf("the resolver address as its own upstream: %v, want refused", err)
	}
	mac, _ := net.ParseMAC("02:00:00:00:53:02")
	d := &dnsEdge{cfg: DNSConfig{Resolver: netip.MustParseAddr(ueResolver)}, hostIfindex: 7, mac: mac}
	r := d.Rule([]netip.Prefix{netip.MustParsePrefix("10.45.0.0/16"), netip.MustParsePrefix("fd45::/48"), netip.MustParsePrefix("10.46.1.9/16")})
	if r.ID != "dns/ue-dns" || r.Priority != 0 || r.Action != "FORWARD_DECAPSULATED" || r.Dest.Ifindex != 7 || r.Dest.MAC.String() != mac.String() {
		t.Errorf("rule %+v", r)
	}
	if len(r.Filters) != 2 || r.Filters[0].TunnelType != "" || r.Filters[1].TunnelType != "GTP_U" {
		t.Fatalf("filters %+v; want the plain one and its GTP_U twin", r.Filters)
	}
	for _, f := range r.Filters {
		if !slices.Equal(f.SrcAddress, []string{"10.45.0.0/16", "10.46.0.0/16"}) || !slices.Equal(f.DstAddress, []string{ueResolver}) ||
			!slices.Equal(f.DstPort, []string{"53"}) || !slices.Equal(f.Protocol, []string{"UDP", "TCP"}) {
			t.Errorf("filter %+v", f)
		}
	}
}

// TestDNSEdgeSteeredFromGTPU: UE DNS inside an uplink G-PDU, steered by
// the edge's Rule with traffic/classify on the RAN-facing interface,
// reaches the responder decapsulated, and its answer goes back to the gNB
// in the UE's downlink tunnel through the classifier's return path on the
// responder's veth.
func TestDNSEdgeSteeredFromGTPU(t *testing.T) {
	l := newDNSLab(t)
	ran, err := netns.Create(l.dir, "ran")
	must(t, err)
	h, err := netns.Handle(l.host)
	must(t, err)
	defer h.Close()
	rh, err := netns.Handle(ran)
	must(t, err)
	defer rh.Close()
	fd, err := netns.Open(ran)
	must(t, err)
	defer fd.Close()
	must(t, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "steer0"}, PeerName: "ran0", PeerNamespace: netlink.NsFd(int(fd))}))
	for _, e := range []struct {
		h          *netlink.Handle
		name, addr string
	}{{h, "steer0", "192.0.2.2/24"}, {rh, "ran0", "192.0.2.1/24"}} {
		lk, err := e.h.LinkByName(e.name)
		must(t, err)
		must(t, e.h.AddrReplace(lk, &netlink.Addr{IPNet: prefixNet(netip.MustParsePrefix(e.addr))}))
		must(t, e.h.LinkSetUp(lk))
	}
	steer, err := h.LinkByName("steer0")
	must(t, err)

	d, err := newDNSEdge(context.Background(), DNSConfig{Resolver: netip.MustParseAddr(ueResolver),
		NetnsDir: l.dir, NetnsName: "dnsedge", HostNetns: l.host})
	must(t, err)
	defer func() { must(t, d.close()) }()
	must(t, d.SetRules([]agentproto.DNSRule{{ID: "r", DomainName: "echo.mec.example", IPAddressType: "IP_V4", IPAddress: "10.0.0.7", TTL: 42}}))

	pools := []netip.Prefix{netip.MustParsePrefix("10.46.0.0/16")}
	cls, err := classify.New()
	must(t, err)
	defer cls.Close()
	must(t, netns.Do(l.host, func() error {
		for _, a := range []struct {
			prog *ebpf.Program
			idx  int
		}{{cls.Program(), steer.Attrs().Index}, {cls.ReturnPath(), d.HostIfindex()}} {
			lk, err := link.AttachTCX(link.TCXOptions{Interface: a.idx, Program: a.prog, Attach: ebpf.AttachTCXIngress})
			if err != nil {
				return err
			}
			t.Cleanup(func() { lk.Close() })
		}
		return nil
	}))
	must(t, cls.Configure(classify.ReturnConfig{Uplink: steer.Attrs().Index, UEPrefixes: pools}))
	must(t, cls.Apply([]classify.Rule{d.Rule(pools)}))
	ue := netip.MustParseAddrPort("10.46.0.1:40000")
	must(t, cls.SetUE(ue.Addr(), classify.UEPath{GNB: netip.MustParseAddr("192.0.2.1"), TEID: 0x202, QFI: 9,
		Source: netip.MustParseAddr("192.0.2.2")}))

	q := new(mdns.Msg)
	q.SetQuestion("echo.mec.example.", mdns.TypeA)
	wire, err := q.Pack()
	must(t, err)
	gnb := udpIn(t, ran, "192.0.2.1:2152")
	if _, err := gnb.WriteToUDPAddrPort(gpdu(0x101, 1, 9, innerUDP(ue, netip.MustParseAddrPort(ueResolver+":53"), wire)),
		netip.MustParseAddrPort("192.0.2.2:2152")); err != nil {
		t.Fatal(err)
	}
	reply, _, ok := readUDP(gnb, 3*time.Second)
	if !ok || len(reply) < 16+28 {
		t.Fatalf("no G-PDU back at the gNB (got %x)", reply)
	}
	if teid := binary.BigEndian.Uint32(reply[4:8]); teid != 0x202 {
		t.Errorf("reply in TEID %#x, want the UE's downlink 0x202", teid)
	}
	in := reply[16:]
	src, _ := netip.AddrFromSlice(in[12:16])
	dst, _ := netip.AddrFromSlice(in[16:20])
	if src.String() != ueResolver || dst != ue.Addr() || binary.BigEndian.Uint16(in[20:22]) != 53 {
		t.Errorf("inner packet %s:%d -> %s, want %s:53 -> %s", src, binary.BigEndian.Uint16(in[20:22]), dst, ueResolver, ue.Addr())
	}
	var r mdns.Msg
	must(t, r.Unpack(in[28:]))
	if got := answers(&r); r.Id != q.Id || !slices.Equal(got, []string{"10.0.0.7/42"}) {
		t.Errorf("answer %v (id %d, asked %d), want 10.0.0.7/42", got, r.Id, q.Id)
	}
	cnt, err := cls.Counters()
	must(t, err)
	if c := cnt["dns/ue-dns"]; c.Packets != 1 {
		t.Errorf("counters %+v, want 1 packet on dns/ue-dns", cnt)
	}
}

// TestDNSEdgeStopKeepsWiring: with pinning an agent that stops only
// closes the responder's sockets (the pinned rule still steers UE DNS to
// its veth, for the next agent); RemoveDNSEdge, for an agent started
// without steering, takes the namespace and the veth away.
func TestDNSEdgeStopKeepsWiring(t *testing.T) {
	l := newDNSLab(t)
	cfg := DNSConfig{Resolver: netip.MustParseAddr(ueResolver), NetnsDir: l.dir, NetnsName: "dnsedge", HostNetns: l.host}
	d, err := newDNSEdge(context.Background(), cfg)
	must(t, err)
	if !d.stop() || d.stop() {
		t.Fatal("stop: the first call must stop, the second do nothing")
	}
	if names, _ := netns.List(l.dir, "dnsedge"); len(names) != 1 {
		t.Fatalf("namespace gone after stop: %v", names)
	}
	if links, _ := netns.Links(l.host, "", "veth"); !slices.Contains(links, d.hostLink) {
		t.Fatalf("veth %s gone after stop: %v", d.hostLink, links)
	}
	must(t, RemoveDNSEdge(l.host, l.dir, "dnsedge"))
	if names, _ := netns.List(l.dir, "dnsedge"); len(names) != 0 {
		t.Errorf("namespace left after RemoveDNSEdge: %v", names)
	}
	if links, _ := netns.Links(l.host, "", "veth"); slices.Contains(links, d.hostLink) {
		t.Errorf("veth %s left after RemoveDNSEdge: %v", d.hostLink, links)
	}
	must(t, RemoveDNSEdge(l.host, l.dir, "dnsedge")) // nothing left: no error
}

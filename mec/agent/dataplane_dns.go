package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/traffic/classify"
	"github.com/mecorch/mecorch/traffic/dns"
	"github.com/mecorch/mecorch/traffic/netns"
)

// DNSConfig places the edge DNS responder: the address UEs send their DNS
// to, and where queries without a local answer go.
type DNSConfig struct {
	// Resolver is the resolver address UEs use (--ue-dns). It goes on lo
	// inside the responder's namespace; a traffic rule (dnsEdge.Rule)
	// steers UE packets for it there.
	Resolver netip.Addr
	// Upstream are the real resolvers (host:port, --dns-upstream), asked
	// from the agent's namespace. Resolver itself is refused: UE DNS is
	// steered to the responder, so it is not an upstream of itself.
	Upstream []string
	// NetnsDir and NetnsName: where the responder's own namespace is
	// created (traffic/netns.Create), or found again after a restart.
	NetnsDir, NetnsName string
	// HostNetns is the agent's namespace ("" = current), where the host end
	// of the responder's veth lives.
	HostNetns string
	Logger    *slog.Logger
}

// The point-to-point link between the agent's namespace and the
// responder's: link-local, so it collides with no operator addressing.
func dnsHostSide4() netip.Prefix { return netip.MustParsePrefix("169.254.53.1/30") }
func dnsNsSide4() netip.Prefix   { return netip.MustParsePrefix("169.254.53.2/30") }
func dnsHostSide6() netip.Prefix { return netip.MustParsePrefix("fe80::53:1/64") }
func dnsNsSide6() netip.Prefix   { return netip.MustParsePrefix("fe80::53:2/64") }

// dnsNsLink is the responder-side end's name inside its namespace.
const dnsNsLink = "eth0"

// dnsEdge is the edge DNS responder (traffic/dns) in its own namespace,
// joined to the agent's by a veth pair. UE DNS reaches it decapsulated,
// steered by Rule; its sockets live in that namespace, bound on Resolver,
// while its forwarding runs on ordinary goroutines and hence leaves from
// the agent's namespace, where the upstream resolvers are reachable.
type dnsEdge struct {
	cfg         DNSConfig
	log         *slog.Logger
	nsPath      string
	hostLink    string
	hostIfindex int
	mac         net.HardwareAddr
	resp        *dns.Responder
	cancel      context.CancelFunc
	done        chan struct{} // closed when the responder's Run returned

	mu      sync.Mutex
	applied []dns.Rule // what the responder holds
	warned  string     // the last warning about names given twice
	closed  bool
}

// newDNSEdge creates (or re-adopts after a restart) the responder's
// namespace and its veth, binds the responder inside it on Resolver:53 and
// runs it until close (or until ctx ends).
func newDNSEdge(ctx context.Context, cfg DNSConfig) (*dnsEdge, error) {
	if err := checkDNSConfig(cfg); err != nil {
		return nil, err
	}
	cfg.Resolver = cfg.Resolver.Unmap()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &dnsEdge{cfg: cfg, log: log, hostLink: netns.VethName("mecdns", cfg.NetnsName), done: make(chan struct{})}
	nsPath, err := netns.Create(cfg.NetnsDir, cfg.NetnsName)
	if errors.Is(err, fs.ErrExist) {
		log.Info("dns: adopting the responder's namespace", "netns", nsPath)
	} else if err != nil {
		return nil, fmt.Errorf("dns responder: %w", err)
	}
	d.nsPath = nsPath
	if err := d.wire(); err != nil {
		return nil, errors.Join(err, d.teardown())
	}
	err = netns.Do(nsPath, func() error {
		var err error
		d.resp, err = dns.New(dns.Config{
			Listen:   netip.AddrPortFrom(cfg.Resolver, 53).String(),
			Upstream: cfg.Upstream,
			Logger:   log,
		})
		return err
	})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("dns responder in %s: %w", nsPath, err), d.teardown())
	}
	runCtx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	go func() {
		defer close(d.done)
		// Run serves from this goroutine's sockets; the forwarding dials it
		// makes happen on threads in the agent's namespace.
		if err := d.resp.Run(runCtx); err != nil {
			log.Error("dns responder stopped", "err", err)
		}
	}()
	return d, nil
}

func checkDNSConfig(cfg DNSConfig) error {
	r := cfg.Resolver.Unmap()
	if !r.IsValid() || r.Zone() != "" || r.IsUnspecified() || r.IsMulticast() {
		return fmt.Errorf("dns responder: resolver address %v is not a unicast address", cfg.Resolver)
	}
	if cfg.NetnsDir == "" || cfg.NetnsName == "" {
		return errors.New("dns responder: NetnsDir and NetnsName are required")
	}
	for i, u := range cfg.Upstream {
		host, _, err := net.SplitHostPort(u)
		if err != nil {
			return fmt.Errorf("dns responder: upstream[%d] %q: %w", i, u, err)
		}
		if a, err := netip.ParseAddr(host); err == nil && a.Unmap() == r {
			return fmt.Errorf("dns responder: upstream[%d] %q is the UE resolver address itself: queries for it are steered to this responder", i, u)
		}
	}
	return nil
}

// wire makes the veth pair (or keeps one made by an earlier agent: its
// MACs stay, and with them the classifier's Dest) and addresses both ends.
func (d *dnsEdge) wire() error {
	h, err := netns.Handle(d.cfg.HostNetns)
	if err != nil {
		return fmt.Errorf("dns responder: %w", err)
	}
	defer h.Close()
	ph, err := netns.Handle(d.nsPath)
	if err != nil {
		return fmt.Errorf("dns responder: %w", err)
	}
	defer ph.Close()
	host, ok := dnsPair(h, ph, d.hostLink)
	if !ok {
		if host, err = d.makePair(h, ph); err != nil {
			return err
		}
	}
	v6 := d.cfg.Resolver.Is6()
	if err := upWith(h, host, dnsHostSide4(), v6, dnsHostSide6()); err != nil {
		return fmt.Errorf("dns responder: host end %s: %w", d.hostLink, err)
	}
	peer, err := ph.LinkByName(dnsNsLink)
	if err != nil {
		return fmt.Errorf("dns responder: %s: %w", dnsNsLink, err)
	}
	if err := upWith(ph, peer, dnsNsSide4(), v6, dnsNsSide6()); err != nil {
		return fmt.Errorf("dns responder: %s: %w", dnsNsLink, err)
	}
	lo, err := ph.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("dns responder: lo: %w", err)
	}
	if err := ph.LinkSetUp(lo); err != nil {
		return fmt.Errorf("dns responder: lo up: %w", err)
	}
	bits := d.cfg.Resolver.BitLen()
	if err := ph.AddrReplace(lo, &netlink.Addr{IPNet: prefixNet(netip.PrefixFrom(d.cfg.Resolver, bits))}); err != nil {
		return fmt.Errorf("dns responder: %s on lo: %w", d.cfg.Resolver, err)
	}
	// A namespace taken over from an agent started with another --ue-dns
	// still has that address.
	addrs, err := ph.AddrList(lo, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("dns responder: addresses of lo: %w", err)
	}
	for _, a := range addrs {
		if ip, ok := netip.AddrFromSlice(a.IP); ok && !ip.IsLoopback() && ip.Unmap() != d.cfg.Resolver {
			if err := ph.AddrDel(lo, &a); err != nil {
				return fmt.Errorf("dns responder: remove old resolver address %s: %w", ip, err)
			}
		}
	}
	// Replies go to UEs anywhere: everything leaves through the host end,
	// where the classifier's return path encapsulates it.
	gw, def := dnsHostSide4().Addr(), netip.MustParsePrefix("0.0.0.0/0")
	if v6 {
		gw, def = dnsHostSide6().Addr(), netip.MustParsePrefix("::/0")
	}
	route := &netlink.Route{LinkIndex: peer.Attrs().Index, Dst: prefixNet(def), Gw: gw.AsSlice()}
	if err := ph.RouteReplace(route); err != nil {
		return fmt.Errorf("dns responder: default route via %s: %w", gw, err)
	}
	d.hostIfindex, d.mac = host.Attrs().Index, slices.Clone(peer.Attrs().HardwareAddr)
	return nil
}

// dnsPair finds the pair an earlier agent made: the host end a veth in the
// agent's namespace, its peer dnsNsLink in the responder's, each the
// other's peer.
func dnsPair(h, ph *netlink.Handle, hostLink string) (netlink.Link, bool) {
	host, err := h.LinkByName(hostLink)
	if err != nil || host.Type() != "veth" {
		return nil, false
	}
	peer, err := ph.LinkByName(dnsNsLink)
	if err != nil || peer.Type() != "veth" {
		return nil, false
	}
	if host.Attrs().ParentIndex != peer.Attrs().Index || peer.Attrs().ParentIndex != host.Attrs().Index {
		return nil, false
	}
	return host, true
}

func (d *dnsEdge) makePair(h, ph *netlink.Handle) (netlink.Link, error) {
	for _, x := range []struct {
		h    *netlink.Handle
		name string
	}{{h, d.hostLink}, {ph, dnsNsLink}} {
		if l, err := x.h.LinkByName(x.name); err == nil {
			if err := x.h.LinkDel(l); err != nil {
				return nil, fmt.Errorf("dns responder: remove stale %s: %w", x.name, err)
			}
		}
	}
	fd, err := netns.Open(d.nsPath)
	if err != nil {
		return nil, fmt.Errorf("dns responder: %w", err)
	}
	defer fd.Close()
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: d.hostLink},
		PeerName:      dnsNsLink,
		PeerNamespace: netlink.NsFd(int(fd)),
	}
	if err := h.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("dns responder: add veth %s: %w", d.hostLink, err)
	}
	host, err := h.LinkByName(d.hostLink)
	if err != nil {
		return nil, fmt.Errorf("dns responder: veth %s: %w", d.hostLink, err)
	}
	return host, nil
}

// upWith puts the IPv4 address (and with v6 the static link-local IPv6
// one, without DAD so that it is usable at once) on l and brings it up.
func upWith(h *netlink.Handle, l netlink.Link, a4 netip.Prefix, v6 bool, a6 netip.Prefix) error {
	if err := h.AddrReplace(l, &netlink.Addr{IPNet: prefixNet(a4)}); err != nil {
		return fmt.Errorf("address %s: %w", a4, err)
	}
	if v6 {
		if err := h.AddrReplace(l, &netlink.Addr{IPNet: prefixNet(a6), Flags: unix.IFA_F_NODAD}); err != nil {
			return fmt.Errorf("address %s: %w", a6, err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	return nil
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// HostIfindex is the host end of the responder's veth, in HostNetns: where
// steered UE DNS is sent, and where its replies come back.
func (d *dnsEdge) HostIfindex() int { return d.hostIfindex }

// MAC is the responder-side end's: the Ethernet destination of steered
// packets.
func (d *dnsEdge) MAC() net.HardwareAddr { return slices.Clone(d.mac) }

// Rule is the traffic rule that steers UE DNS (UDP and TCP to Resolver
// port 53 from the UE pools) to the responder, decapsulated. Like an app's
// rule without tunnel fields, it has a GTP_U twin so that it matches the
// inner packet of an uplink G-PDU. UE pools of the other address family
// than Resolver's are left out (a filter cannot mix families); with none,
// any source matches.
func (d *dnsEdge) Rule(uePrefixes []netip.Prefix) classify.Rule {
	f := classify.Filter{
		DstAddress: []string{d.cfg.Resolver.String()},
		DstPort:    []string{"53"},
		Protocol:   []string{"UDP", "TCP"},
	}
	for _, p := range uePrefixes {
		if p.Addr().Unmap().Is4() == d.cfg.Resolver.Is4() {
			f.SrcAddress = append(f.SrcAddress, p.Masked().String())
		}
	}
	twin := f
	twin.SrcAddress = slices.Clone(f.SrcAddress)
	twin.TunnelType = "GTP_U"
	return classify.Rule{
		ID: "dns/ue-dns", Priority: 0, Action: classify.ActionForwardDecapsulated,
		Filters: []classify.Filter{f, twin},
		Dest:    classify.Dest{Ifindex: d.hostIfindex, MAC: d.MAC()},
	}
}

// SetRules makes the responder answer rules: the union of the served apps'
// DNS rules, local instances' first. An invalid rule is skipped, with an
// error naming it, and the others apply. One name and family given several
// addresses is answered with the first rule's address only (traffic/dns
// holds one address per name and family; see DATAPLANE.md), with a warning
// logged once. Cheap when the outcome is what the responder holds.
func (d *dnsEdge) SetRules(rules []agentproto.DNSRule) error {
	type famKey struct {
		name string
		v6   bool
	}
	var errs, dups []string
	var out []dns.Rule
	first := map[famKey]dns.Rule{}
	ids := map[string]int{}
	for _, r := range rules {
		dr := dns.Rule{ID: r.ID, DomainName: r.DomainName, IPAddressType: r.IPAddressType,
			IPAddress: r.IPAddress, TTL: r.TTL, State: dns.Active}
		if err := dns.ValidateRules([]dns.Rule{dr}); err != nil {
			errs = append(errs, ruleProblem(r, err))
			continue
		}
		k := famKey{strings.ToLower(strings.TrimSuffix(r.DomainName, ".")), r.IPAddressType == dns.IPv6}
		if prev, ok := first[k]; ok {
			// The same address again (two instances of one app, or its
			// remote twin) is no news; another address is.
			if a, b := netip.MustParseAddr(prev.IPAddress), netip.MustParseAddr(dr.IPAddress); a != b {
				dups = append(dups, fmt.Sprintf("%s %s: %s (rule %s) kept, %s (rule %s) not answered",
					r.DomainName, r.IPAddressType, a, prev.ID, b, r.ID))
			}
			continue
		}
		first[k] = dr
		// IDs must be unique to the responder; several apps' ids need not be.
		if n := ids[r.ID]; n > 0 {
			dr.ID = fmt.Sprintf("%s#%d", r.ID, n)
		}
		ids[r.ID]++
		out = append(out, dr)
	}
	var err error
	if len(errs) > 0 {
		err = fmt.Errorf("dns rules skipped: %s", strings.Join(errs, "; "))
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if w := strings.Join(dups, "; "); w != d.warned {
		if w != "" {
			d.log.Warn("dns: a name has several addresses; one is answered", "names", w)
		}
		d.warned = w
	}
	if d.applied != nil && slices.Equal(out, d.applied) {
		return err
	}
	if serr := d.resp.SetRules(out); serr != nil {
		return errors.Join(err, fmt.Errorf("dns rules refused, the previous set stays: %w", serr))
	}
	if out == nil {
		out = []dns.Rule{}
	}
	d.applied = out
	return err
}

// ruleProblem names a rule and what is wrong with it, without the
// "rules[0]." of a one-rule set's field paths.
func ruleProblem(r agentproto.DNSRule, err error) string {
	var inv *dns.InvalidRulesError
	if !errors.As(err, &inv) {
		return fmt.Sprintf("rule %q: %v", r.ID, err)
	}
	parts := make([]string, len(inv.Problems))
	for i, p := range inv.Problems {
		parts[i] = strings.TrimPrefix(p.Field, "rules[0].") + ": " + p.Reason
	}
	return fmt.Sprintf("rule %q (%s): %s", r.ID, r.DomainName, strings.Join(parts, ", "))
}

// Counters are the responder's: answered locally, forwarded, failed,
// refused.
func (d *dnsEdge) Counters() dns.Counters { return d.resp.Counters() }

// close stops the responder, then deletes its veth and its namespace.
// Closing twice is a no-op.
func (d *dnsEdge) close() error {
	if !d.stop() {
		return nil
	}
	return d.teardown()
}

// stop ends the responder (its sockets) and leaves the namespace and the
// veth: with pinning, the classifier goes on steering UE DNS to that veth
// after the agent exits, and the next agent adopts both (same MAC, so the
// rule in force stays right) and answers again. It reports whether this
// call did the stopping.
func (d *dnsEdge) stop() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return false
	}
	d.closed = true
	d.cancel()
	<-d.done // the sockets are closed: nothing holds the namespace
	return true
}

// RemoveDNSEdge deletes what a DNS responder left (its veth in hostNetns
// and its namespace), for an agent started without one: nothing may stay
// steered to it. What is not there is no error.
func RemoveDNSEdge(hostNetns, netnsDir, netnsName string) error {
	return errors.Join(
		netns.DelVeth(hostNetns, netns.VethName("mecdns", netnsName)),
		netns.Delete(netnsDir, netnsName),
	)
}

func (d *dnsEdge) teardown() error {
	return errors.Join(
		netns.DelVeth(d.cfg.HostNetns, d.hostLink),
		netns.Delete(d.cfg.NetnsDir, d.cfg.NetnsName),
	)
}

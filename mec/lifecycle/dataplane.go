package lifecycle

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/mec/uetunnel"
)

// The data-plane part of a host's desired state depends on other hosts:
// the UE tunnels (the same for every host), the tunnel peers (every other
// host with a VTEP) and the remote instances (for each app with traffic
// rules and no instance wanted running here, one running instance
// elsewhere to steer to over VXLAN). Agents act only on a newer
// generation, so a change elsewhere must bump the generation of every host
// whose part it changes, and of no other: SyncDataPlane computes each
// host's part, compares its digest with the one stored in the host's
// KindHostDataPlane document, and bumps the hosts whose digest moved.
//
// The remote instances are stored in that document, as last sent, for two
// reasons: the choice of the nearest instance rests on RTTs that move
// without any write, so the document is what makes a generation's content
// fixed; and the last choice is kept while it stays good (below), so that
// steering, and the UE flows on it, do not flap between two instances at
// similar distances.

// HostDataPlane is the KindHostDataPlane document of one host.
type HostDataPlane struct {
	HostID string `json:"hostId"`
	// Digest covers the host's whole data-plane part: its VTEP, the
	// peers, the UE tunnels' revision and Remote.
	Digest string `json:"digest"`
	// Remote are the remote instances sent with the host's generation
	// (empty when the host has no VTEP).
	Remote []agentproto.RemoteInstance `json:"remote,omitempty"`
}

// switchMargin is how much nearer (in RTT) another instance must be before
// a host's steering leaves the instance it uses: a fifth of the current
// RTT, at least a millisecond. Below that, measurement noise would move
// UE flows between instances.
func switchMargin(cur time.Duration) time.Duration { return max(cur/5, time.Millisecond) }

// dpWorld is what the data-plane parts are computed from, read in one
// transaction.
type dpWorld struct {
	hosts     []mec.Host // ordered by ID
	byID      map[string]*mec.Host
	apps      []*dpApp // apps with traffic rules, ordered by appDId
	peersHash string   // digest of every host's (id, VTEP)
	tunnelRev int64
	stored    map[string]HostDataPlane
	distance  func(a, b string) (time.Duration, bool)
}

// dpApp is one app (by appDId) whose AppD has traffic rules.
type dpApp struct {
	appDID string
	// wanted are the hosts with an instance of the app desired Running:
	// they steer to their own.
	wanted map[string]bool
	// cands are the instances other hosts may steer to: desired and
	// observed Running, MAC known, on a host with a VTEP; by ID.
	cands []dpCand
}

type dpCand struct {
	inst  mec.AppInstance
	host  *mec.Host
	rules appRules
}

// loadWorld reads hosts, instances, their packages' rules, the tunnel
// table's revision and the stored data-plane documents.
func (s *Service) loadWorld(tx mec.Tx) (*dpWorld, error) {
	hosts, err := mec.LoadAll[mec.Host](tx, mec.KindHost)
	if err != nil {
		return nil, err
	}
	w := &dpWorld{hosts: hosts, byID: make(map[string]*mec.Host, len(hosts)), distance: s.cfg.Distance,
		stored: map[string]HostDataPlane{}}
	h := sha256.New()
	for i := range hosts {
		w.byID[hosts[i].ID] = &hosts[i]
		if hosts[i].VTEP != "" {
			fmt.Fprintf(h, "%s=%s\n", hosts[i].ID, hosts[i].VTEP)
		}
	}
	w.peersHash = hex.EncodeToString(h.Sum(nil))
	if w.tunnelRev, err = uetunnel.Revision(tx); err != nil {
		return nil, err
	}
	docs, err := mec.LoadAll[HostDataPlane](tx, mec.KindHostDataPlane)
	if err != nil {
		return nil, err
	}
	for _, d := range docs {
		w.stored[d.HostID] = d
	}
	insts, err := mec.LoadAll[mec.AppInstance](tx, mec.KindAppInstance)
	if err != nil {
		return nil, err
	}
	rules := map[string]appRules{} // by package
	ruled := func(pkgID string) (appRules, error) {
		if r, ok := rules[pkgID]; ok {
			return r, nil
		}
		var r appRules
		pkg, _, err := mec.Load[mec.AppPackage](tx, mec.KindAppPackage, pkgID)
		switch {
		case errors.Is(err, mec.ErrNotFound):
		case err != nil:
			return r, fmt.Errorf("package %s: %w", pkgID, err)
		default:
			if r, err = rulesOf(pkg); err != nil {
				return r, err
			}
		}
		rules[pkgID] = r
		return r, nil
	}
	apps := map[string]*dpApp{}
	for _, in := range insts {
		if in.HostID == "" || in.DesiredState != mec.DesiredRunning {
			continue
		}
		r, err := ruled(in.AppPkgID)
		if err != nil {
			return nil, err
		}
		if len(r.traffic) == 0 {
			continue
		}
		a := apps[in.AppDID]
		if a == nil {
			a = &dpApp{appDID: in.AppDID, wanted: map[string]bool{}}
			apps[in.AppDID] = a
			w.apps = append(w.apps, a)
		}
		a.wanted[in.HostID] = true
		host := w.byID[in.HostID]
		// A host that stopped reporting keeps its instances' last observed
		// state for a while: steering UEs of other sites into its tunnel
		// would black-hole them. Draining hosts still serve.
		if in.ObservedState == ObservedRunning && in.MAC != "" && host != nil && host.VTEP != "" &&
			(host.State == mec.HostReady || host.State == mec.HostDraining) {
			a.cands = append(a.cands, dpCand{inst: in, host: host, rules: r})
		}
	}
	slices.SortFunc(w.apps, func(a, b *dpApp) int { return cmp.Compare(a.appDID, b.appDID) })
	return w, nil
}

// plan computes h's data-plane document: the remote instances it steers to
// and the digest of its whole part.
func (w *dpWorld) plan(h *mec.Host) HostDataPlane {
	d := HostDataPlane{HostID: h.ID}
	if h.VTEP != "" {
		prev := map[string]string{} // appDId → the instance steered to
		for _, r := range w.stored[h.ID].Remote {
			prev[r.AppDID] = r.ID
		}
		for _, a := range w.apps {
			if a.wanted[h.ID] {
				continue
			}
			c, ok := w.choose(h, a, prev[a.appDID])
			if !ok {
				continue
			}
			if len(d.Remote) == agentproto.MaxRemote {
				break
			}
			d.Remote = append(d.Remote, agentproto.RemoteInstance{ID: c.inst.ID, AppDID: a.appDID, HostID: c.host.ID,
				VTEP: c.host.VTEP, MAC: c.inst.MAC, TrafficRules: c.rules.traffic, DNSRules: c.rules.dns})
		}
	}
	d.Digest = w.digest(h, d.Remote)
	return d
}

// choose picks the instance of a that h steers to: the one on the host
// whose site is nearest to h's by RTT (a host of h's own site counts as
// nearest; an unknown distance as furthest), the lowest instance ID among
// equals. The instance used so far (prevID) is kept unless another is
// nearer by switchMargin, or it has no known distance and another has.
func (w *dpWorld) choose(h *mec.Host, a *dpApp, prevID string) (dpCand, bool) {
	type ranked struct {
		c     dpCand
		d     time.Duration
		known bool
	}
	var best, prev *ranked
	for _, c := range a.cands {
		if c.host.ID == h.ID {
			continue // leaving this host; nothing to steer to here
		}
		r := &ranked{c: c}
		switch {
		case c.host.SiteID == h.SiteID:
			r.known = true
		case w.distance != nil:
			r.d, r.known = w.distance(h.SiteID, c.host.SiteID)
		}
		if c.inst.ID == prevID {
			prev = r
		}
		if best == nil || better(r.known, r.d, r.c.inst.ID, best.known, best.d, best.c.inst.ID) {
			best = r
		}
	}
	switch {
	case best == nil:
		return dpCand{}, false
	case prev == nil || prev == best:
		return best.c, true
	case !prev.known && best.known:
		return best.c, true
	case prev.known && best.known && best.d+switchMargin(prev.d) <= prev.d:
		return best.c, true
	}
	return prev.c, true
}

// better orders candidates: known distances first, nearer first, then the
// lower instance ID.
func better(aKnown bool, aD time.Duration, aID string, bKnown bool, bD time.Duration, bID string) bool {
	if aKnown != bKnown {
		return aKnown
	}
	if aKnown && aD != bD {
		return aD < bD
	}
	return aID < bID
}

// storedDigest is the digest h's agent was last sent. A host without a
// document was never synced: its desired states had no remote instances,
// and whatever tunnels and peers they listed, the digest of an empty part
// stands for them (a host that has tunnels or peers differs from it, and
// is bumped on the next sync). So a new host with nothing to its data plane
// is not bumped for it.
func (w *dpWorld) storedDigest(h *mec.Host) string {
	if d, ok := w.stored[h.ID]; ok {
		return d.Digest
	}
	return (&dpWorld{}).digest(&mec.Host{}, nil)
}

// digest is what the host's agent would see change: its VTEP, the peers
// (every host's VTEP), the UE tunnels' revision and the remote instances.
// A host without a VTEP has neither peers nor remote instances, so only
// the tunnels count for it.
func (w *dpWorld) digest(h *mec.Host, remote []agentproto.RemoteInstance) string {
	v := struct {
		Tunnels int64                       `json:"t"`
		VTEP    string                      `json:"v,omitempty"`
		Peers   string                      `json:"p,omitempty"`
		Remote  []agentproto.RemoteInstance `json:"r,omitempty"`
	}{Tunnels: w.tunnelRev}
	if h.VTEP != "" {
		v.VTEP, v.Peers, v.Remote = h.VTEP, w.peersHash, remote
	}
	b, _ := json.Marshal(v) // plain data: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// peersOf lists the hosts other than hostID that have a VTEP, by host ID.
func peersOf(tx mec.Tx, hostID string) ([]agentproto.TunnelPeer, error) {
	hosts, err := mec.LoadAll[mec.Host](tx, mec.KindHost)
	if err != nil {
		return nil, err
	}
	var out []agentproto.TunnelPeer
	for _, h := range hosts { // ordered by ID
		if h.ID != hostID && h.VTEP != "" && len(out) < agentproto.MaxPeers {
			out = append(out, agentproto.TunnelPeer{HostID: h.ID, VTEP: h.VTEP})
		}
	}
	return out, nil
}

// ueTunnels lists the provisioned UE tunnels, by UE address, in the
// agent's terms.
func ueTunnels(tx mec.Tx) ([]agentproto.UETunnel, error) {
	ts, err := uetunnel.All(tx)
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, nil
	}
	out := make([]agentproto.UETunnel, len(ts))
	for i, t := range ts {
		out[i] = agentproto.UETunnel(t)
	}
	return out, nil
}

// canonicalMAC is a reported MAC in one spelling (lower case, colons), so
// that a change of case is no change; "" for none or a malformed one.
func canonicalMAC(s string) string {
	if s == "" {
		return ""
	}
	m, err := net.ParseMAC(s)
	if err != nil || len(m) != 6 {
		return ""
	}
	return m.String()
}

// Package uetunnel keeps the UE downlink tunnels an operator provisions:
// for a UE address, the gNB's N3 address, the downlink TEID and QFI, and
// the N3 address the gNB expects packets from. Every host's agent gets the
// whole table in its desired state, so that an app's replies reach the UE
// through the RAN before the agent has learnt the tunnel from downlink
// traffic. It is the domain side of the operator API's /api/v1/ue_tunnels.
package uetunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/mecorch/mecorch/mec"
)

// Tunnel is one UE's downlink GTP-U tunnel.
type Tunnel struct {
	UEAddress     string `json:"ueAddress"`
	GNBAddress    string `json:"gnbAddress"`
	TEID          uint32 `json:"teid"`
	QFI           int    `json:"qfi"`
	SourceAddress string `json:"sourceAddress"`
}

// Table is the KindUETunnelTable document: how many tunnels there are, and
// a revision that grows with every change to any of them.
type Table struct {
	Count    int   `json:"count"`
	Revision int64 `json:"revision"`
}

// tableID is the one KindUETunnelTable document.
const tableID = "all"

// MaxTunnels caps the table: the agent protocol's bound
// (agentproto.MaxUETunnels, which mec packages below agentproto may not
// import; lifecycle's tests check they agree).
const MaxTunnels = 65536

// Service provisions UE tunnels.
type Service struct {
	store    mec.Store
	log      *slog.Logger
	onChange func()
}

// New returns the service. onChange, which may be nil, is called after
// every committed change (the hosts' desired states list the tunnels); it
// must not block.
func New(store mec.Store, log *slog.Logger, onChange func()) *Service {
	return &Service{store: store, log: log, onChange: onChange}
}

// ParseUEAddress reads a UE address as the API's path carries it and
// returns its canonical form (IPv4-mapped IPv6 as IPv4), the key it is
// kept under.
func ParseUEAddress(s string) (netip.Addr, []mec.InvalidParam) {
	a, reason := unicast(s, false)
	if reason != "" {
		return netip.Addr{}, []mec.InvalidParam{{Name: "ueAddress", Reason: reason}}
	}
	return a, nil
}

// unicast parses an address that a data plane can send to: no zone, not
// unspecified, multicast or the IPv4 limited broadcast; want4 asks for
// IPv4 (an IPv4-mapped IPv6 address counts and is unmapped).
func unicast(s string, want4 bool) (netip.Addr, string) {
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		if want4 {
			return netip.Addr{}, "must be an IPv4 address"
		}
		return netip.Addr{}, "must be an IP address (IPv4 or IPv6, without a zone)"
	}
	a = a.Unmap()
	switch {
	case want4 && !a.Is4():
		return netip.Addr{}, "must be an IPv4 address"
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return netip.Addr{}, "must be a unicast address"
	}
	return a, ""
}

// Validate checks t's fields and returns it in canonical form; the
// problems name each wrong field.
func Validate(t Tunnel) (Tunnel, []mec.InvalidParam) {
	var bad []mec.InvalidParam
	if ue, p := ParseUEAddress(t.UEAddress); p != nil {
		bad = append(bad, p...)
	} else {
		t.UEAddress = ue.String()
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"gnbAddress", &t.GNBAddress}, {"sourceAddress", &t.SourceAddress}} {
		a, reason := unicast(*f.v, true)
		if reason != "" {
			bad = append(bad, mec.InvalidParam{Name: f.name, Reason: reason})
			continue
		}
		*f.v = a.String()
	}
	if t.QFI < 0 || t.QFI > 63 {
		bad = append(bad, mec.InvalidParam{Name: "qfi", Reason: "must be from 0 to 63"})
	}
	return t, bad
}

// Put creates the tunnel of t.UEAddress, or replaces it; created tells
// which. Replacing it with the same values writes nothing.
func (s *Service) Put(ctx context.Context, t Tunnel) (Tunnel, bool, error) {
	t, bad := Validate(t)
	if len(bad) > 0 {
		return Tunnel{}, false, mec.Errorf(http.StatusBadRequest, bad, "invalid UE tunnel: %s: %s", bad[0].Name, bad[0].Reason)
	}
	var created, changed bool
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		created, changed = false, false
		cur, v, err := mec.LoadOr(tx, mec.KindUETunnel, t.UEAddress, Tunnel{})
		if err != nil {
			return err
		}
		if v != mec.MustNotExist && cur == t {
			return nil
		}
		tab, tv, err := mec.LoadOr(tx, mec.KindUETunnelTable, tableID, Table{})
		if err != nil {
			return err
		}
		if v == mec.MustNotExist {
			if tab.Count >= MaxTunnels {
				return mec.Errorf(http.StatusConflict, nil, "%d UE tunnels are provisioned, the most there may be: delete some first", tab.Count)
			}
			tab.Count, created = tab.Count+1, true
		}
		if _, err := mec.Save(tx, mec.KindUETunnel, t.UEAddress, t, v); err != nil {
			return err
		}
		tab.Revision++
		changed = true
		_, err = mec.Save(tx, mec.KindUETunnelTable, tableID, tab, tv)
		return err
	})
	if err != nil {
		return Tunnel{}, false, fmt.Errorf("put UE tunnel %s: %w", t.UEAddress, err)
	}
	if changed {
		s.log.Info("UE tunnel provisioned", "ue", t.UEAddress, "gnb", t.GNBAddress, "teid", t.TEID, "created", created)
		s.changed()
	}
	return t, created, nil
}

// Get returns the tunnel of a UE address (in any form ParseUEAddress
// takes); 404 when there is none.
func (s *Service) Get(ctx context.Context, ueAddress string) (Tunnel, error) {
	ue, bad := ParseUEAddress(ueAddress)
	if bad != nil {
		return Tunnel{}, mec.Errorf(http.StatusBadRequest, bad, "invalid UE address %q: %s", ueAddress, bad[0].Reason)
	}
	var t Tunnel
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		t, _, err = mec.Load[Tunnel](tx, mec.KindUETunnel, ue.String())
		return err
	})
	if errors.Is(err, mec.ErrNotFound) {
		return Tunnel{}, notFound(ue)
	}
	return t, err
}

// Delete removes the tunnel of a UE address; 404 when there is none.
func (s *Service) Delete(ctx context.Context, ueAddress string) error {
	ue, bad := ParseUEAddress(ueAddress)
	if bad != nil {
		return mec.Errorf(http.StatusBadRequest, bad, "invalid UE address %q: %s", ueAddress, bad[0].Reason)
	}
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		if err := tx.Delete(mec.KindUETunnel, ue.String(), mec.AnyVersion); err != nil {
			return err
		}
		tab, tv, err := mec.LoadOr(tx, mec.KindUETunnelTable, tableID, Table{})
		if err != nil {
			return err
		}
		tab.Count = max(tab.Count-1, 0)
		tab.Revision++
		_, err = mec.Save(tx, mec.KindUETunnelTable, tableID, tab, tv)
		return err
	})
	if errors.Is(err, mec.ErrNotFound) {
		return notFound(ue)
	}
	if err != nil {
		return fmt.Errorf("delete UE tunnel %s: %w", ue, err)
	}
	s.log.Info("UE tunnel removed", "ue", ue.String())
	s.changed()
	return nil
}

// List returns every tunnel, ordered by UE address (IPv4 before IPv6).
func (s *Service) List(ctx context.Context) ([]Tunnel, error) {
	var out []Tunnel
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		out, err = All(tx)
		return err
	})
	return out, err
}

// All reads every tunnel inside tx, ordered by UE address (IPv4 before
// IPv6), as the hosts' desired states list them.
func All(tx mec.Tx) ([]Tunnel, error) {
	ts, err := mec.LoadAll[Tunnel](tx, mec.KindUETunnel)
	if err != nil {
		return nil, err
	}
	// Keys are canonical addresses (Put wrote them), so a parse failure
	// would be a foreign document: it sorts last, by its text.
	key := func(t Tunnel) netip.Addr { a, _ := netip.ParseAddr(t.UEAddress); return a }
	slices.SortFunc(ts, func(a, b Tunnel) int {
		ka, kb := key(a), key(b)
		if ka.IsValid() != kb.IsValid() {
			if ka.IsValid() {
				return -1
			}
			return 1
		}
		if c := ka.Compare(kb); c != 0 {
			return c
		}
		return strings.Compare(a.UEAddress, b.UEAddress)
	})
	return ts, nil
}

// Revision is the table's revision inside tx: it changes whenever any
// tunnel does (0 before the first).
func Revision(tx mec.Tx) (int64, error) {
	tab, _, err := mec.LoadOr(tx, mec.KindUETunnelTable, tableID, Table{})
	return tab.Revision, err
}

func notFound(ue netip.Addr) error {
	return mec.Errorf(http.StatusNotFound, nil, "no UE tunnel for %s", ue)
}

func (s *Service) changed() {
	if s.onChange != nil {
		s.onChange()
	}
}

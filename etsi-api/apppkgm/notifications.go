package apppkgm

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/mec"
)

// Outgoing is one notification to deliver: the body to POST to CallbackURI.
type Outgoing struct {
	CallbackURI string
	Body        []byte
}

// recipients says which subscription types hear of a package event.
// MEC 010-2 has a subscription type per kind of change; a deletion is also
// told to change subscribers, for whom the package's state has ended (as
// NFV-SOL 005 reports PKG_DELETE in its change notification). A client
// subscribed both ways gets two bodies with the same id and can drop one.
func recipients(t mec.EventType) []string {
	switch t {
	case mec.EventPkgOnboarded:
		return []string{SubOnboarding}
	case mec.EventPkgEnabled, mec.EventPkgDisabled:
		return []string{SubChange}
	case mec.EventPkgDeleted:
		return []string{SubChange, SubDeletion}
	}
	return nil
}

// Notifications returns the AppPkgNotifications that ev causes, one per
// matching subscription of this API, all with the same notification id. An
// app provider's subscription hears only of its own packages.
// Events of other APIs give none. The caller delivers them.
func (h *Handler) Notifications(ctx context.Context, ev mec.Event) ([]Outgoing, error) {
	types := recipients(ev.Type)
	if types == nil {
		return nil, nil
	}
	if ev.Package == nil {
		return nil, fmt.Errorf("%s event without a package", ev.Type)
	}
	p := *ev.Package
	if p.AppDID == "" {
		// Never onboarded (a deleted package that had no content):
		// no subscriber was ever told of it, and the notification's
		// appDId would be empty.
		return nil, nil
	}
	subs, err := h.subscriptions(ctx)
	if err != nil {
		return nil, fmt.Errorf("load app_pkgm subscriptions: %w", err)
	}
	at := ev.At
	if at.IsZero() {
		at = h.clock()
	}
	m := matcher{h: h, ctx: ctx, pkg: p, deleted: ev.Type == mec.EventPkgDeleted}
	id := h.ids()
	var out []Outgoing
	for _, s := range subs {
		if !slices.Contains(types, s.Type) || !auth.Hears(s, p.Owner) {
			continue
		}
		match, err := m.matches(s)
		if err != nil {
			return nil, err
		}
		if !match {
			continue
		}
		body, err := json.Marshal(AppPkgNotification{
			ID: id, NotificationType: string(ev.Type), SubscriptionID: s.ID,
			TimeStamp: TimeStamp{Seconds: at.Unix(), NanoSeconds: at.Nanosecond()},
			AppPkgID:  p.ID, AppDID: p.AppDID, OperationalState: p.OperationalState,
			Links: NotifLinks{Subscription: Link{h.subURL(s.ID)}},
		})
		if err != nil {
			return nil, fmt.Errorf("encode notification: %w", err)
		}
		out = append(out, Outgoing{CallbackURI: s.CallbackURI, Body: body})
	}
	return out, nil
}

// matcher matches one package against subscription filters, reading the
// usage state only if a filter asks for it.
type matcher struct {
	h       *Handler
	ctx     context.Context
	pkg     mec.AppPackage
	deleted bool
	usage   string
}

// matches applies a subscription's appPkgFilter: no filter matches every
// package; otherwise any one filter must match in every attribute it has.
func (m *matcher) matches(s mec.Subscription) (bool, error) {
	if len(s.Filter) == 0 {
		return true, nil
	}
	var filters []PkgFilter
	if err := json.Unmarshal(s.Filter, &filters); err != nil {
		m.h.log.Warn("stored appPkgFilter unreadable; subscription skipped", "subscription", s.ID, "err", err)
		return false, nil
	}
	if len(filters) == 0 {
		return true, nil
	}
	for _, f := range filters {
		ok, err := m.match(f)
		if ok || err != nil {
			return ok, err
		}
	}
	return false, nil
}

func (m *matcher) match(f PkgFilter) (bool, error) {
	p := m.pkg
	eq := func(want, got string) bool { return want == "" || want == got }
	if !eq(f.AppPkgInfoID, p.ID) || !eq(f.AppDID, p.AppDID) || !eq(f.AppProvider, p.AppProvider) ||
		!eq(f.AppName, p.AppName) || !eq(f.AppSoftwareVersion, p.AppSoftwareVersion) ||
		!eq(f.AppDVersion, p.AppDVersion) || !eq(f.OperationalState, p.OperationalState) {
		return false, nil
	}
	if f.UsageState == "" {
		return true, nil
	}
	if m.usage == "" {
		m.usage = mec.PkgNotInUse // a deleted package has no instances
		if !m.deleted {
			u, err := m.h.cat.UsageState(m.ctx, p.ID)
			if err != nil {
				return false, fmt.Errorf("usage state of %s: %w", p.ID, err)
			}
			m.usage = u
		}
	}
	return f.UsageState == m.usage, nil
}

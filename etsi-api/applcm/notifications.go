package applcm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/mec"
)

// Outgoing is one notification to deliver: the body to POST to the
// subscriber's callback URI.
type Outgoing struct {
	CallbackURI string
	Body        []byte
}

// instNotification is AppInstNotification (6.2.2.11). Its notificationType
// is the subscription type, as the v3 file says.
type instNotification struct {
	ID               string       `json:"id"`
	NotificationType string       `json:"notificationType"`
	AppInstanceState string       `json:"appInstanceState"`
	SubscriptionID   string       `json:"subscriptionId"`
	TimeStamp        timeStamp    `json:"timeStamp"`
	AppInstanceID    string       `json:"appInstanceId"`
	AppPkgID         string       `json:"appPkgId"`
	AppDID           string       `json:"appDId"`
	AppInstLocation  *locationInf `json:"appInstLocation,omitempty"`
	Links            notifLinks   `json:"_links"`
}

// opOccNotification is AppLcmOpOccNotification (6.2.2.16).
type opOccNotification struct {
	ID               string     `json:"id"`
	NotificationType string     `json:"notificationType"`
	OperationType    string     `json:"operationType"`
	OperationState   string     `json:"operationState"`
	SubscriptionID   string     `json:"subscriptionId"`
	TimeStamp        timeStamp  `json:"timeStamp"`
	AppLcmOpOccID    string     `json:"appLcmOpOccId"`
	AppInstanceID    string     `json:"appInstanceId"`
	Links            notifLinks `json:"_links"`
}

// idNotification is AppInstanceIdentifierCreationNotification (6.2.2.27)
// and AppInstanceIdentifierDeletionNotification (6.2.2.30).
type idNotification struct {
	ID               string     `json:"id"`
	NotificationType string     `json:"notificationType"`
	SubscriptionID   string     `json:"subscriptionId"`
	TimeStamp        timeStamp  `json:"timeStamp"`
	AppInstanceID    string     `json:"appInstanceId"`
	Links            notifLinks `json:"_links"`
}

// notifLinks covers the _links of every notification. AppInstNotification's
// schema has only subscription; appInstance is added, as the others have it.
type notifLinks struct {
	Subscription link  `json:"subscription"`
	AppInstance  link  `json:"appInstance"`
	AppLcmOpOcc  *link `json:"appLcmOpOcc,omitempty"`
}

// Notifications turns one committed event into the notifications owed to
// this API's subscribers. The dispatcher calls it for every event, in the
// order they were published, and delivers what it returns. Every
// notification of one event and type carries the same id, whoever receives
// it. An app provider's subscription hears only of its own instances and
// their operations.
//
// An instance's ETSI state (NOT_INSTANTIATED, STARTED, STOPPED) changes
// exactly when one of its operations completes, so AppInstNotifications
// follow COMPLETED operation events; instance events alone cannot tell a
// change from a re-save (an agent's report, a failed operation closed).
func (h *Handler) Notifications(ctx context.Context, ev mec.Event) ([]Outgoing, error) {
	switch {
	case ev.Type == mec.EventInstanceState && ev.Instance != nil:
		kind := ""
		switch {
		case ev.Deleted:
			kind = subIDDeletion
		case ev.Created:
			kind = subIDCreation
		default:
			return nil, nil
		}
		subs, err := h.subscriptionsOf(ctx, kind)
		if err != nil || len(subs) == 0 {
			return nil, err
		}
		return h.idNotifications(kind, ev, subs)
	case ev.Type == mec.EventOpOccState && ev.OpOcc != nil:
		subs, err := h.subscriptionsOf(ctx, subOpOccState, subInstanceState)
		if err != nil || len(subs) == 0 {
			return nil, err
		}
		return h.opNotifications(ctx, ev, subs)
	}
	return nil, nil
}

func (h *Handler) idNotifications(kind string, ev mec.Event, subs []subscription) ([]Outgoing, error) {
	l := links(h.cfg.BaseURL + Prefix)
	id := h.ids()
	var out []Outgoing
	for _, s := range subs {
		if !auth.Hears(s.Subscription, ev.Instance.Owner) || !s.filter.Instances.matches(ev.Instance) {
			continue
		}
		n := idNotification{ID: id, NotificationType: kind, SubscriptionID: s.ID, TimeStamp: stamp(ev.At),
			AppInstanceID: ev.Instance.ID,
			Links:         notifLinks{Subscription: link{l.sub(s.ID)}, AppInstance: link{l.instance(ev.Instance.ID)}}}
		if err := appendOut(&out, s.CallbackURI, n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// opNotifications: an AppLcmOpOccNotification to each matching operation
// subscription and, when the operation completed, an AppInstNotification to
// each matching instance subscription.
func (h *Handler) opNotifications(ctx context.Context, ev mec.Event, subs []subscription) ([]Outgoing, error) {
	op := ev.OpOcc
	completed := op.State == mec.OpStateCompleted
	// Load the instance only when a filter needs more than its ID.
	needInst := false
	for _, s := range subs {
		needInst = needInst || s.filter.Instances.needsInstance() || (completed && s.Type == subInstanceState)
	}
	inst, site, found := &mec.AppInstance{ID: op.AppInstanceID}, mec.Site{}, true
	if needInst {
		var err error
		if inst, site, found, err = h.instanceOf(ctx, op, ev.Instance); err != nil {
			return nil, err
		}
	}
	l := links(h.cfg.BaseURL + Prefix)
	opID, instID := h.ids(), h.ids()
	state := stateAfter(op)
	var out []Outgoing
	for _, s := range subs {
		if !auth.Hears(s.Subscription, op.Owner) {
			continue
		}
		if !found && s.filter.Instances.needsInstance() {
			continue // the instance is gone: nothing to select it by
		}
		if !s.filter.Instances.matches(inst) {
			continue
		}
		nl := notifLinks{Subscription: link{l.sub(s.ID)}, AppInstance: link{l.instance(op.AppInstanceID)}}
		var n any
		switch s.Type {
		case subOpOccState:
			if !s.filter.matchesOp(op) {
				continue
			}
			nl.AppLcmOpOcc = &link{l.opOcc(op.ID)}
			n = opOccNotification{ID: opID, NotificationType: subOpOccState, OperationType: op.Operation,
				OperationState: op.State, SubscriptionID: s.ID, TimeStamp: stamp(ev.At), AppLcmOpOccID: op.ID,
				AppInstanceID: op.AppInstanceID, Links: nl}
		case subInstanceState:
			if !completed || !found || (len(s.filter.States) > 0 && !slices.Contains(s.filter.States, state)) {
				continue
			}
			in := instNotification{ID: instID, NotificationType: subInstanceState, AppInstanceState: state,
				SubscriptionID: s.ID, TimeStamp: stamp(ev.At), AppInstanceID: inst.ID, AppPkgID: inst.AppPkgID,
				AppDID: inst.AppDID, Links: nl}
			if state != mec.NotInstantiated {
				// "Shall be present if the application instance is
				// instantiated": when its site has a country to give.
				in.AppInstLocation = location(site)
			}
			n = in
		}
		if err := appendOut(&out, s.CallbackURI, n); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// stateAfter is the ETSI state an instance is in once op has completed.
func stateAfter(op *mec.LcmOpOcc) string {
	switch {
	case op.Operation == mec.OpTerminate:
		return mec.NotInstantiated
	case op.Operation == mec.OpOperate && op.DesiredState == mec.DesiredStopped:
		return mec.OpStopped
	}
	return mec.OpStarted
}

// instanceOf returns op's instance and the site of op's host (where the
// instance ran when op completed, even if it has been terminated since).
// The instance is the one the event carries, as committed with op, when it
// does; otherwise it is read from the store, where it may be gone already
// (deleted after a termination before the event was dispatched): found is
// then false.
func (h *Handler) instanceOf(ctx context.Context, op *mec.LcmOpOcc, carried *mec.AppInstance) (*mec.AppInstance, mec.Site, bool, error) {
	var in mec.AppInstance
	var site mec.Site
	found := true
	err := h.store.View(ctx, func(tx mec.Tx) error {
		var err error
		if carried != nil && carried.ID == op.AppInstanceID {
			in = *carried
		} else if in, _, err = mec.Load[mec.AppInstance](tx, mec.KindAppInstance, op.AppInstanceID); errors.Is(err, mec.ErrNotFound) {
			found, in = false, mec.AppInstance{ID: op.AppInstanceID}
		} else if err != nil {
			return err
		}
		if op.HostID == "" {
			return nil
		}
		host, _, err := mec.Load[mec.Host](tx, mec.KindHost, op.HostID)
		if errors.Is(err, mec.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		site, _, err = mec.Load[mec.Site](tx, mec.KindSite, host.SiteID)
		if errors.Is(err, mec.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return nil, mec.Site{}, false, fmt.Errorf("instance %s of operation %s: %w", op.AppInstanceID, op.ID, err)
	}
	return &in, site, found, nil
}

// subscription is a stored subscription with its filter decoded.
type subscription struct {
	mec.Subscription
	filter subFilter
}

// subscriptionsOf returns this API's subscriptions of the given types.
func (h *Handler) subscriptionsOf(ctx context.Context, types ...string) ([]subscription, error) {
	all, err := h.subscriptions(ctx)
	if err != nil {
		return nil, fmt.Errorf("read subscriptions: %w", err)
	}
	var out []subscription
	for _, s := range all {
		if !slices.Contains(types, s.Type) {
			continue
		}
		sub := subscription{Subscription: s}
		if len(s.Filter) > 0 {
			if err := json.Unmarshal(s.Filter, &sub.filter); err != nil {
				return nil, fmt.Errorf("decode filter of subscription %s: %w", s.ID, err)
			}
		}
		out = append(out, sub)
	}
	return out, nil
}

func appendOut(out *[]Outgoing, uri string, n any) error {
	body, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encode notification: %w", err)
	}
	*out = append(*out, Outgoing{CallbackURI: uri, Body: body})
	return nil
}

package applcm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/etsi-api/notify"
	"github.com/mecorch/mecorch/mec"
)

// subInfo is the SubscriptionInfo of every type (AppInstSubscriptionInfo,
// AppLcmOpOccSubscriptionInfo, AppInstIdCreationSubscriptionInfo,
// AppInstIdDeletionSubscriptionInfo); each type fills its own attributes.
type subInfo struct {
	ID               string `json:"id"`
	SubscriptionType string `json:"subscriptionType"`
	CallbackURI      string `json:"callbackUri"`
	// AppInstanceState is one state as the v3 file types it, or the list
	// when the client asked for several.
	AppInstanceState              any          `json:"appInstanceState,omitempty"`
	AppInstanceSubscriptionFilter *instFilter  `json:"appInstanceSubscriptionFilter,omitempty"`
	AppLcmOpOccSubscriptionFilter *opOccFilter `json:"appLcmOpOccSubscriptionFilter,omitempty"`
	Links                         struct {
		Self link `json:"self"`
	} `json:"_links"`
}

// opOccFilter is AppLcmOpOccSubscriptionFilter as answered.
type opOccFilter struct {
	AppInstanceSubscriptionFilter *instFilter `json:"appInstanceSubscriptionFilter,omitempty"`
	NotificationTypes             any         `json:"notificationTypes,omitempty"`
	OperationTypes                any         `json:"operationTypes,omitempty"`
	OperationStates               any         `json:"operationStates,omitempty"`
}

func toSubInfo(l links, s mec.Subscription) subInfo {
	var f subFilter
	_ = json.Unmarshal(s.Filter, &f) // written by createSub; empty when absent
	info := subInfo{ID: s.ID, SubscriptionType: s.Type, CallbackURI: s.CallbackURI}
	info.Links.Self = link{l.sub(s.ID)}
	switch s.Type {
	case subOpOccState:
		if f.Instances != nil || len(f.NotificationTypes)+len(f.OperationTypes)+len(f.OperationStates) > 0 {
			info.AppLcmOpOccSubscriptionFilter = &opOccFilter{AppInstanceSubscriptionFilter: f.Instances,
				NotificationTypes: stringOrList(f.NotificationTypes), OperationTypes: stringOrList(f.OperationTypes),
				OperationStates: stringOrList(f.OperationStates)}
		}
	default:
		info.AppInstanceState = stringOrList(f.States)
		info.AppInstanceSubscriptionFilter = f.Instances
	}
	return info
}

// decodeSub reads a subscription request of any of the four types.
func decodeSub(body []byte) (mec.Subscription, error) {
	var rp report
	o, _ := parseBody(&rp, body)
	if o == nil {
		if len(rp.bad) == 0 {
			rp.add("subscriptionType", "required")
			rp.add("callbackUri", "required")
		}
		return mec.Subscription{}, rp.err("subscription request")
	}
	sub := mec.Subscription{API: apiName, Request: compact(body)}
	raw := o.str("subscriptionType", true, 64)
	sub.Type = canonicalSubType(raw)
	if raw != "" && sub.Type == "" {
		rp.add("subscriptionType", "must be %s, %s, %s or %s", subInstanceState, subOpOccState, subIDCreation, subIDDeletion)
	}
	sub.CallbackURI = o.str("callbackUri", true, 2048)
	if sub.CallbackURI != "" {
		if err := notify.ValidateCallbackURI(sub.CallbackURI); err != nil {
			rp.add("callbackUri", "%v", err)
		}
	}
	var f subFilter
	switch sub.Type {
	case subInstanceState:
		f.States = o.strList("appInstanceState", instanceStates()...)
		if io := o.obj("appInstanceSubscriptionFilter"); io != nil {
			f.Instances = decodeInstFilter(io)
		}
	case subIDCreation:
		// NOTE of 6.2.2.25: an instance not yet created has no identity
		// or name to select it by.
		if io := o.obj("appInstanceSubscriptionFilter"); io != nil {
			f.Instances = decodeInstFilter(io, selAppDID, selAppFromProvider)
		}
	case subIDDeletion:
		if io := o.obj("appInstanceSubscriptionFilter"); io != nil {
			f.Instances = decodeInstFilter(io)
		}
	case subOpOccState:
		if fo := o.obj("appLcmOpOccSubscriptionFilter"); fo != nil {
			decodeOpOccFilter(fo, &f)
		}
	default:
		// The type decides which attributes exist; name none as unknown.
		for name := range o.members {
			o.known[name] = true
		}
	}
	o.unknown()
	if err := rp.err("subscription request"); err != nil {
		return mec.Subscription{}, err
	}
	filter, err := json.Marshal(f)
	if err != nil {
		return mec.Subscription{}, fmt.Errorf("encode subscription filter: %w", err)
	}
	if string(filter) != "{}" {
		sub.Filter = filter
	}
	return sub, nil
}

func (h *Handler) createSub(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sub, err := decodeSub(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sub.ID, sub.CreatedAt, sub.Owner, sub.OwnerRole = h.ids(), h.clock(), auth.OwnerOf(r.Context()), auth.RoleOf(r.Context())
	err = h.store.Update(r.Context(), func(tx mec.Tx) error {
		_, err := mec.Save(tx, mec.KindSubscription, sub.ID, sub, mec.MustNotExist)
		return err
	})
	if err != nil {
		h.fail(w, r, fmt.Errorf("create subscription: %w", err))
		return
	}
	l := links(h.base(r))
	w.Header().Set("Location", l.sub(sub.ID))
	writeJSON(w, http.StatusCreated, toSubInfo(l, sub))
}

// subLinkList is AppInstanceSubscriptionLinkList (6.2.2.19).
type subLinkList struct {
	Links struct {
		Self          link          `json:"self"`
		Subscriptions []subLinkItem `json:"subscriptions,omitempty"`
	} `json:"_links"`
}

type subLinkItem struct {
	Href             string `json:"href"`
	SubscriptionType string `json:"subscriptionType"`
}

func (h *Handler) listSubs(w http.ResponseWriter, r *http.Request) {
	want := ""
	if q := r.URL.Query(); q.Has("subscriptiontype") {
		if want = canonicalSubType(q.Get("subscriptiontype")); want == "" {
			h.fail(w, r, (&report{bad: []mec.InvalidParam{{Name: "subscriptiontype",
				Reason: fmt.Sprintf("must be %s, %s, %s or %s", subInstanceState, subOpOccState, subIDCreation, subIDDeletion)}}}).err("query"))
			return
		}
	}
	subs, err := h.subscriptions(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	l := links(h.base(r))
	var out subLinkList
	out.Links.Self = link{string(l) + "/subscriptions"}
	if want != "" {
		out.Links.Self.Href += "?subscriptiontype=" + want
	}
	for _, s := range subs {
		if (want == "" || s.Type == want) && auth.VisibleTo(r.Context(), s.Owner) {
			out.Links.Subscriptions = append(out.Links.Subscriptions, subLinkItem{Href: l.sub(s.ID), SubscriptionType: s.Type})
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) getSub(w http.ResponseWriter, r *http.Request) {
	var sub mec.Subscription
	err := h.store.View(r.Context(), func(tx mec.Tx) error {
		var err error
		sub, _, err = loadSub(r.Context(), tx, r.PathValue("subscriptionId"))
		return err
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	writeTagged(w, r, toSubInfo(links(h.base(r)), sub))
}

func (h *Handler) deleteSub(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("subscriptionId")
	err := h.store.Update(r.Context(), func(tx mec.Tx) error {
		_, v, err := loadSub(r.Context(), tx, id)
		if err != nil {
			return err
		}
		return tx.Delete(mec.KindSubscription, id, v)
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// loadSub reads one of this API's subscriptions that ctx's caller may see;
// the package management API's, which share the kind, and other clients'
// are not found here (a 403 would tell that they exist).
func loadSub(ctx context.Context, tx mec.Tx, id string) (mec.Subscription, int64, error) {
	s, v, err := mec.Load[mec.Subscription](tx, mec.KindSubscription, id)
	if errors.Is(err, mec.ErrNotFound) || (err == nil && (s.API != apiName || !auth.VisibleTo(ctx, s.Owner))) {
		return s, 0, mec.Errorf(http.StatusNotFound, nil, "subscription %q not found", id)
	}
	return s, v, err
}

// subscriptions returns every subscription of this API, whoever owns it
// (notifications go to each).
func (h *Handler) subscriptions(ctx context.Context) ([]mec.Subscription, error) {
	var out []mec.Subscription
	err := h.store.View(ctx, func(tx mec.Tx) error {
		all, err := mec.LoadAll[mec.Subscription](tx, mec.KindSubscription)
		for _, s := range all {
			if s.API == apiName {
				out = append(out, s)
			}
		}
		return err
	})
	return out, err
}

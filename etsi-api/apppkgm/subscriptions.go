package apppkgm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/etsi-api/notify"
	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
)

// createSub is POST /subscriptions (AppPkgSubscription →
// AppPkgSubscriptionInfo).
func (h *Handler) createSub(w http.ResponseWriter, r *http.Request) {
	if !h.acceptsJSON(w, r) {
		return
	}
	body, err := readJSON(w, r, "application/json")
	if err != nil {
		h.fail(w, r, err)
		return
	}
	req, err := decodeSubscription(body)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	sub := mec.Subscription{
		ID: h.ids(), API: apiName, Type: req.SubscriptionType, CallbackURI: req.CallbackURI,
		Request: compactJSON(body), Owner: auth.OwnerOf(r.Context()), OwnerRole: auth.RoleOf(r.Context()), CreatedAt: h.clock(),
	}
	if len(req.AppPkgFilter) > 0 {
		if sub.Filter, err = json.Marshal(req.AppPkgFilter); err != nil {
			h.fail(w, r, fmt.Errorf("encode appPkgFilter: %w", err))
			return
		}
	}
	err = h.store.Update(r.Context(), func(tx mec.Tx) error {
		_, err := mec.Save(tx, mec.KindSubscription, sub.ID, sub, mec.MustNotExist)
		return err
	})
	if err != nil {
		h.fail(w, r, fmt.Errorf("store subscription: %w", err))
		return
	}
	info := h.subInfo(sub)
	w.Header().Set("Location", info.Links.Self.Href)
	h.writeJSON(w, r, http.StatusCreated, info)
}

// subRequest is an AppPkgSubscription as checked.
type subRequest struct {
	CallbackURI      string
	SubscriptionType string
	AppPkgFilter     []PkgFilter
}

// decodeSubscription reads an AppPkgSubscription (6.2.3.7).
func decodeSubscription(body []byte) (subRequest, error) {
	o, err := parseObject(body)
	if err != nil {
		return subRequest{}, err
	}
	var req subRequest
	if req.CallbackURI = o.str("callbackUri", true); req.CallbackURI != "" {
		if err := notify.ValidateCallbackURI(req.CallbackURI); err != nil {
			o.fail("callbackUri", err.Error())
		}
	}
	req.SubscriptionType = o.enum("subscriptionType", true, SubOnboarding, SubChange, SubDeletion)
	for _, f := range o.objects("appPkgFilter") {
		pf := PkgFilter{
			AppPkgInfoID:       f.str("appPkgInfoId", false),
			AppDID:             f.str("appDId", false),
			AppProvider:        f.str("appProvider", false),
			AppName:            f.str("appName", false),
			AppSoftwareVersion: f.str("appSoftwareVersion", false),
			AppDVersion:        f.str("appDVersion", false),
			OperationalState:   f.enum("operationalState", false, mec.PkgEnabled, mec.PkgDisabled),
			UsageState:         f.enum("usageState", false, mec.PkgInUse, mec.PkgNotInUse),
		}
		// The standard allows the state attributes only with change
		// subscriptions: the other notifications carry no state change.
		if req.SubscriptionType != "" && req.SubscriptionType != SubChange {
			for _, field := range []string{"operationalState", "usageState"} {
				if _, ok := f.raw(field, false); ok {
					f.fail(field, "allowed only with subscriptionType "+SubChange)
				}
			}
		}
		req.AppPkgFilter = append(req.AppPkgFilter, pf)
	}
	return req, o.problems("invalid AppPkgSubscription")
}

// compactJSON returns doc without insignificant space, to store a request
// as accepted.
func compactJSON(doc []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, doc); err != nil {
		return nil
	}
	return buf.Bytes()
}

// subInfo maps a stored subscription to AppPkgSubscriptionInfo; its filter
// is returned too (as NFV-SOL 005 does), so that a client can see what it
// subscribed to.
func (h *Handler) subInfo(s mec.Subscription) AppPkgSubscriptionInfo {
	info := AppPkgSubscriptionInfo{ID: s.ID, SubscriptionType: s.Type, CallbackURI: s.CallbackURI,
		Links: SelfLinks{Self: Link{h.subURL(s.ID)}}}
	if len(s.Filter) > 0 {
		if err := json.Unmarshal(s.Filter, &info.AppPkgFilter); err != nil {
			h.log.Warn("stored appPkgFilter unreadable; omitted", "subscription", s.ID, "err", err)
		}
	}
	return info
}

// listSubs is GET /subscriptions.
func (h *Handler) listSubs(w http.ResponseWriter, r *http.Request) {
	if !h.acceptsJSON(w, r) {
		return
	}
	subs, err := h.subscriptions(r.Context())
	if err != nil {
		h.fail(w, r, err)
		return
	}
	list := AppPkgSubscriptionLinkList{Links: SubscriptionLinks{
		Self:          Link{h.cfg.BaseURL + Prefix + "/subscriptions"},
		Subscriptions: make([]SubscriptionLink, 0, len(subs)),
	}}
	for _, s := range subs {
		if !auth.VisibleTo(r.Context(), s.Owner) {
			continue
		}
		list.Links.Subscriptions = append(list.Links.Subscriptions, SubscriptionLink{Href: h.subURL(s.ID), SubscriptionType: s.Type})
	}
	h.writeJSON(w, r, http.StatusOK, list)
}

// subscriptions returns this API's subscriptions, whoever owns them (the
// notifications go to each); the kind is shared with the other ETSI APIs.
func (h *Handler) subscriptions(ctx context.Context) ([]mec.Subscription, error) {
	var out []mec.Subscription
	err := h.store.View(ctx, func(tx mec.Tx) error {
		all, err := mec.LoadAll[mec.Subscription](tx, mec.KindSubscription)
		if err != nil {
			return err
		}
		out = out[:0]
		for _, s := range all {
			if s.API == apiName {
				out = append(out, s)
			}
		}
		return nil
	})
	return out, err
}

// getSub is GET /subscriptions/{subscriptionId}.
func (h *Handler) getSub(w http.ResponseWriter, r *http.Request) {
	if !h.acceptsJSON(w, r) {
		return
	}
	var sub mec.Subscription
	err := h.store.View(r.Context(), func(tx mec.Tx) error {
		var err error
		sub, _, err = h.loadSub(r.Context(), tx, r.PathValue("subscriptionId"))
		return err
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeJSON(w, r, http.StatusOK, h.subInfo(sub))
}

// deleteSub is DELETE /subscriptions/{subscriptionId}.
func (h *Handler) deleteSub(w http.ResponseWriter, r *http.Request) {
	err := h.store.Update(r.Context(), func(tx mec.Tx) error {
		sub, v, err := h.loadSub(r.Context(), tx, r.PathValue("subscriptionId"))
		if err != nil {
			return err
		}
		return tx.Delete(mec.KindSubscription, sub.ID, v)
	})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// loadSub reads one of this API's subscriptions that ctx's caller may see;
// another API's, or another client's, is as absent as a missing one (a 403
// would tell that it exists).
func (h *Handler) loadSub(ctx context.Context, tx mec.Tx, id string) (mec.Subscription, int64, error) {
	sub, v, err := mec.Load[mec.Subscription](tx, mec.KindSubscription, id)
	if errors.Is(err, mec.ErrNotFound) || err == nil && (sub.API != apiName || !auth.VisibleTo(ctx, sub.Owner)) {
		return sub, 0, problem.New(http.StatusNotFound, fmt.Sprintf("subscription %q not found", id))
	}
	return sub, v, err
}

package applcm

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"

	"github.com/mecorch/mecorch/mec"
)

// Subscription types (AppInstanceSubscriptionType, 6.2.2.x). The v2.1.1
// names are accepted on input and answered with these.
const (
	subInstanceState = "AppInstanceStateChangeSubscription"
	subOpOccState    = "AppLcmOpOccStateChangeSubscription"
	subIDCreation    = "AppIdentifierCreationSubscription"
	subIDDeletion    = "AppIdentifierDeletionSubscription"
)

// canonicalSubType maps a subscriptionType as sent to the v3 name, or "".
func canonicalSubType(s string) string {
	switch s {
	case subInstanceState, "AppInstanceStateChange":
		return subInstanceState
	case subOpOccState, "AppLcmOpOccStateChange":
		return subOpOccState
	case subIDCreation, subIDDeletion:
		return s
	}
	return ""
}

// App instance selector types of AppInstanceSubscriptionFilter: integers in
// v3, names in v2.1.1; both are accepted.
const (
	selVoid = iota
	selAppIdentity
	selAppName
	selAppDID
	selAppFromProvider
)

// selectorNames are the v2.1.1 names of the selector types, by value.
func selectorNames() []string {
	return []string{"VOID", "APP_IDENTITY", "APP_NAME", "APP_D_ID", "APP_FROM_PROVIDER"}
}

// instFilter is AppInstanceSubscriptionFilter (6.2.2.5), kept in the
// subscription in this, its v3 form.
type instFilter struct {
	SelectorType      int              `json:"appInstSelectorType"`
	AppInstances      []string         `json:"appInstances,omitempty"`
	AppsFromProviders []providerFilter `json:"appsFromProviders,omitempty"`
}

type providerFilter struct {
	AppProvider string          `json:"appProvider"`
	AppProducts []productFilter `json:"appProducts,omitempty"`
}

type productFilter struct {
	AppName  string          `json:"appName"`
	Versions []versionFilter `json:"versions,omitempty"`
}

type versionFilter struct {
	AppSoftVersion string   `json:"appSoftVersion"`
	AppDVersion    []string `json:"appDVersion,omitempty"`
}

// subFilter is everything a subscription filters on, whatever its type: the
// stored mec.Subscription.Filter.
type subFilter struct {
	States    []string    `json:"appInstanceState,omitempty"`
	Instances *instFilter `json:"appInstanceSubscriptionFilter,omitempty"`
	// Of AppLcmOpOccSubscriptionFilter:
	NotificationTypes []string `json:"notificationTypes,omitempty"`
	OperationTypes    []string `json:"operationTypes,omitempty"`
	OperationStates   []string `json:"operationStates,omitempty"`
}

// matches reports whether in is selected by f; a nil filter selects all.
func (f *instFilter) matches(in *mec.AppInstance) bool {
	if f == nil {
		return true
	}
	switch f.SelectorType {
	case selAppIdentity:
		return slices.Contains(f.AppInstances, in.ID)
	case selAppName:
		return slices.Contains(f.AppInstances, in.Name)
	case selAppDID:
		return slices.Contains(f.AppInstances, in.AppDID)
	case selAppFromProvider:
		for _, p := range f.AppsFromProviders {
			if p.matches(in) {
				return true
			}
		}
		return false
	}
	return true
}

// matches: the provider, then (when listed) one of its products, then
// (when listed) one of that product's versions.
func (p providerFilter) matches(in *mec.AppInstance) bool {
	if p.AppProvider != in.AppProvider {
		return false
	}
	if len(p.AppProducts) == 0 {
		return true
	}
	for _, prod := range p.AppProducts {
		if prod.AppName != in.AppName {
			continue
		}
		if len(prod.Versions) == 0 {
			return true
		}
		for _, v := range prod.Versions {
			if v.AppSoftVersion == in.AppSoftVersion && (len(v.AppDVersion) == 0 || slices.Contains(v.AppDVersion, in.AppDVersion)) {
				return true
			}
		}
	}
	return false
}

// needsInstance reports whether matching needs more of the instance than
// its ID (an operation event carries only the ID).
func (f *instFilter) needsInstance() bool {
	return f != nil && f.SelectorType != selVoid && f.SelectorType != selAppIdentity
}

// decodeInstFilter reads an AppInstanceSubscriptionFilter at o. allowed
// lists the selector types the subscription type permits.
func decodeInstFilter(o *object, allowed ...int) *instFilter {
	f := &instFilter{SelectorType: -1}
	path := o.at("appInstSelectorType")
	raw := o.raw("appInstSelectorType")
	switch {
	case raw == nil:
		o.rp.add(path, "required")
	case bytes.TrimSpace(raw)[0] == '"':
		var name string
		_ = json.Unmarshal(raw, &name)
		if i := slices.Index(selectorNames(), name); i >= 0 {
			f.SelectorType = i
		} else {
			o.rp.add(path, "must be 0 (VOID), 1 (APP_IDENTITY), 2 (APP_NAME), 3 (APP_D_ID) or 4 (APP_FROM_PROVIDER)")
		}
	default:
		n, err := strconv.Atoi(string(bytes.TrimSpace(raw)))
		if err != nil || n < selVoid || n > selAppFromProvider {
			o.rp.add(path, "must be 0 (VOID), 1 (APP_IDENTITY), 2 (APP_NAME), 3 (APP_D_ID) or 4 (APP_FROM_PROVIDER)")
		} else {
			f.SelectorType = n
		}
	}
	if f.SelectorType >= 0 && len(allowed) > 0 && !slices.Contains(allowed, f.SelectorType) {
		names := make([]string, len(allowed))
		for i, a := range allowed {
			names[i] = selectorNames()[a]
		}
		o.rp.add(path, "this subscription type allows only %v", names)
	}
	f.AppInstances = idList(o, "appInstances")
	if o.has("appsFromProviders") {
		f.AppsFromProviders = decodeProviders(o)
	}
	switch f.SelectorType {
	case selAppIdentity, selAppName, selAppDID:
		if len(f.AppInstances) == 0 {
			o.rp.add(o.at("appInstances"), "required, with at least one entry, for selector %s", selectorNames()[f.SelectorType])
		}
		if len(f.AppsFromProviders) > 0 {
			o.rp.add(o.at("appsFromProviders"), "only with selector APP_FROM_PROVIDER")
		}
	case selAppFromProvider:
		if o.has("appInstances") {
			o.rp.add(o.at("appInstances"), "must be absent with selector APP_FROM_PROVIDER")
		}
		if len(f.AppsFromProviders) == 0 {
			o.rp.add(o.at("appsFromProviders"), "required, with at least one entry, for selector APP_FROM_PROVIDER")
		}
	case selVoid:
		if len(f.AppInstances) > 0 || len(f.AppsFromProviders) > 0 {
			o.rp.add(path, "VOID selects every instance: appInstances and appsFromProviders must be absent")
		}
	}
	o.unknown()
	return f
}

// decodeProviders reads appsFromProviders. v2.1.1 has appProducts and
// versions as single objects, v3 as arrays: both are accepted.
func decodeProviders(o *object) []providerFilter {
	var out []providerFilter
	for i, raw := range o.array("appsFromProviders") {
		po, _ := parseObject(o.rp, index(o.at("appsFromProviders"), i), raw)
		if po == nil {
			continue
		}
		p := providerFilter{AppProvider: po.str("appProvider", true, maxNameLen)}
		for j, prodRaw := range oneOrMany(po, "appProducts") {
			pr, _ := parseObject(po.rp, index(po.at("appProducts"), j), prodRaw)
			if pr == nil {
				continue
			}
			prod := productFilter{AppName: pr.str("appName", true, maxNameLen)}
			for k, vRaw := range oneOrMany(pr, "versions") {
				vo, _ := parseObject(pr.rp, index(pr.at("versions"), k), vRaw)
				if vo == nil {
					continue
				}
				prod.Versions = append(prod.Versions, versionFilter{
					AppSoftVersion: vo.str("appSoftVersion", true, maxNameLen),
					AppDVersion:    vo.strList("appDVersion"),
				})
				vo.unknown()
			}
			p.AppProducts = append(p.AppProducts, prod)
			pr.unknown()
		}
		out = append(out, p)
		po.unknown()
	}
	if len(out) > maxListLen {
		o.rp.add(o.at("appsFromProviders"), "more than %d entries", maxListLen)
	}
	return out
}

// oneOrMany reads a member that is one object or an array of them.
func oneOrMany(o *object, name string) []json.RawMessage {
	raw := o.raw(name)
	if raw == nil {
		return nil
	}
	if bytes.TrimSpace(raw)[0] == '{' {
		return []json.RawMessage{raw}
	}
	return o.array(name)
}

// The values of the filters' enumerations.
func instanceStates() []string { return []string{mec.NotInstantiated, mec.OpStarted, mec.OpStopped} }
func operationTypes() []string { return []string{mec.OpInstantiate, mec.OpOperate, mec.OpTerminate} }
func operationStates() []string {
	return []string{mec.OpStateStarting, mec.OpStateProcessing, mec.OpStateCompleted, mec.OpStateFailed, mec.OpStateFailedTemp}
}

// opOccNotificationType is the one notificationTypes value of
// AppLcmOpOccSubscriptionFilter; v2.1.1 spelt it differently.
const opOccNotificationType = "AppLcmOpOccNotification"

// decodeOpOccFilter reads an AppLcmOpOccSubscriptionFilter.
func decodeOpOccFilter(o *object, f *subFilter) {
	if io := o.obj("appInstanceSubscriptionFilter"); io != nil {
		f.Instances = decodeInstFilter(io)
	}
	// Every accepted value means the one notification type there is.
	if len(o.strList("notificationTypes", opOccNotificationType, "AppLcmOperationOccurrenceNotification")) > 0 {
		f.NotificationTypes = []string{opOccNotificationType}
	}
	f.OperationTypes = o.strList("operationTypes", operationTypes()...)
	f.OperationStates = o.strList("operationStates", operationStates()...)
	o.unknown()
}

// matchesOp reports whether an operation in its new state is selected by
// the operation part of f.
func (f *subFilter) matchesOp(op *mec.LcmOpOcc) bool {
	if len(f.OperationTypes) > 0 && !slices.Contains(f.OperationTypes, op.Operation) {
		return false
	}
	return len(f.OperationStates) == 0 || slices.Contains(f.OperationStates, op.State)
}

// stringOrList renders a 0..N attribute the way the v3 file types it, as
// one string, unless there are several values.
func stringOrList(v []string) any {
	switch len(v) {
	case 0:
		return nil
	case 1:
		return v[0]
	}
	return v
}

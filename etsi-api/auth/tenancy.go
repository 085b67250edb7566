package auth

import (
	"context"

	"github.com/mecorch/mecorch/mec"
)

// OwnerOf is the Owner of a resource that ctx's caller creates: its client
// ID, or "" when the request carries no principal.
func OwnerOf(ctx context.Context) string {
	p, _ := PrincipalFrom(ctx)
	return p.ClientID
}

// RoleOf is the role of ctx's caller, recorded with its subscriptions.
func RoleOf(ctx context.Context) string {
	p, _ := PrincipalFrom(ctx)
	return string(p.Role)
}

// Restricted reports whether ctx's caller may use only what it owns: it is
// neither an operator nor a request without a principal (which only a
// handler used on its own, in unit tests, meets: the assembled server
// authenticates every request before it reaches an API).
func Restricted(ctx context.Context) bool {
	p, ok := PrincipalFrom(ctx)
	return ok && p.Role != RoleOperator
}

// VisibleTo reports whether ctx's caller may see and act on a resource
// owned by owner: an operator on every one, anyone else only on those it
// created, so that one app provider cannot read, change or learn of
// another's. A resource with no owner (created before owners were
// recorded) is an operator's alone.
func VisibleTo(ctx context.Context, owner string) bool {
	if !Restricted(ctx) {
		return true
	}
	return owner != "" && owner == OwnerOf(ctx)
}

// Hears reports whether sub is notified about a resource owned by owner,
// by the rule VisibleTo applies to its creator. A subscription stored
// before roles were recorded is taken for an app provider's, unless it is
// the bootstrap admin's: telling a provider of others' resources would be
// worse than an old operator subscription going quiet.
func Hears(sub mec.Subscription, owner string) bool {
	if sub.Owner == "" || sub.OwnerRole == string(RoleOperator) ||
		sub.OwnerRole == "" && sub.Owner == AdminClientID {
		return true
	}
	return owner != "" && owner == sub.Owner
}

package auth

import (
	"context"
	"testing"

	"github.com/mecorch/mecorch/mec"
)

func TestVisibleTo(t *testing.T) {
	alice := WithPrincipal(context.Background(), Principal{ClientID: "alice", Role: RoleAppProvider})
	op := WithPrincipal(context.Background(), Principal{ClientID: "ops", Role: RoleOperator})
	cases := []struct {
		name  string
		ctx   context.Context
		owner string
		want  bool
	}{
		{"own resource", alice, "alice", true},
		{"another provider's", alice, "bob", false},
		{"unowned, provider", alice, "", false},
		{"operator, any", op, "bob", true},
		{"operator, unowned", op, "", true},
		{"no principal", context.Background(), "bob", true},
	}
	for _, c := range cases {
		if got := VisibleTo(c.ctx, c.owner); got != c.want {
			t.Errorf("%s: VisibleTo = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestHears(t *testing.T) {
	cases := []struct {
		name  string
		sub   mec.Subscription
		owner string
		want  bool
	}{
		{"provider, own resource", mec.Subscription{Owner: "alice", OwnerRole: "app-provider"}, "alice", true},
		{"provider, another's", mec.Subscription{Owner: "alice", OwnerRole: "app-provider"}, "bob", false},
		{"provider, unowned", mec.Subscription{Owner: "alice", OwnerRole: "app-provider"}, "", false},
		{"operator", mec.Subscription{Owner: "ops", OwnerRole: "operator"}, "bob", true},
		{"bootstrap admin before roles", mec.Subscription{Owner: AdminClientID}, "bob", true},
		{"other owner before roles", mec.Subscription{Owner: "carol"}, "bob", false},
		{"no owner", mec.Subscription{}, "bob", true},
	}
	for _, c := range cases {
		if got := Hears(c.sub, c.owner); got != c.want {
			t.Errorf("%s: Hears = %v, want %v", c.name, got, c.want)
		}
	}
}

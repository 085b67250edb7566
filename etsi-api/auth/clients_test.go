package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
)

func TestSecretIsStoredHashed(t *testing.T) {
	e := newEnv(t, Config{AdminToken: adminToken})
	c := e.createClient(adminToken, "acme", RoleAppProvider)
	var doc []byte
	err := e.store.View(context.Background(), func(tx mec.Tx) error {
		rec, err := tx.Get(mec.KindClient, c.ID)
		doc = rec.Doc
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(doc, []byte(c.Secret)) {
		t.Fatal("the secret is stored in clear")
	}
	var rec clientRecord
	if err := json.Unmarshal(doc, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.KDF != kdfName || rec.Iterations != kdfIterations || len(rec.Salt) != saltLen || len(rec.SecretHash) != 32 {
		t.Errorf("stored record %+v", rec)
	}
	// Two clients get different salts.
	c2 := e.createClient(adminToken, "acme2", RoleAppProvider)
	rec2, _, err := e.auth.loadClient(context.Background(), c2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(rec.Salt, rec2.Salt) {
		t.Error("two clients share a salt")
	}
}

func TestClientsAPIValidation(t *testing.T) {
	e := newEnv(t, Config{AdminToken: adminToken})
	tests := []struct {
		name, body, contentType string
		wantStatus              int
		wantParam               string
	}{
		{"unknown role", `{"name":"x","role":"root"}`, "application/json", 400, "role"},
		{"empty name", `{"name":" ","role":"agent"}`, "application/json", 400, "name"},
		{"long name", `{"name":"` + strings.Repeat("n", 200) + `","role":"agent"}`, "application/json", 400, "name"},
		{"unknown field", `{"name":"x","role":"agent","secret":"mine"}`, "application/json", 400, "body"},
		{"not JSON", `name=x`, "application/json", 400, "body"},
		{"form body", `name=x&role=agent`, "application/x-www-form-urlencoded", 415, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p problem.Details
			resp := e.call("POST", ClientsPath, adminToken, strings.NewReader(tt.body), tt.contentType, &p)
			if resp.StatusCode != tt.wantStatus || p.Status != tt.wantStatus {
				t.Fatalf("got %d %+v", resp.StatusCode, p)
			}
			if tt.wantParam != "" && (len(p.InvalidParams) == 0 || p.InvalidParams[0].Name != tt.wantParam) {
				t.Errorf("invalidParams %+v, want %s", p.InvalidParams, tt.wantParam)
			}
		})
	}

	var created createdClient
	resp := e.call("POST", ClientsPath, adminToken, strings.NewReader(`{"name":"edge agent 1","role":"agent"}`), "application/json", &created)
	if resp.StatusCode != 201 || resp.Header.Get("Location") != ClientsPath+"/"+created.ID {
		t.Fatalf("create: %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var got Client
	if resp := e.call("GET", ClientsPath+"/"+created.ID, adminToken, nil, "", &got); resp.StatusCode != 200 || got != created.Client {
		t.Errorf("get: %d %+v", resp.StatusCode, got)
	}
	var p problem.Details
	if resp := e.call("GET", ClientsPath+"/nope", adminToken, nil, "", &p); resp.StatusCode != 404 || p.Status != 404 {
		t.Errorf("get missing: %d %+v", resp.StatusCode, p)
	}
	if resp := e.call("DELETE", ClientsPath+"/nope", adminToken, nil, "", &p); resp.StatusCode != 404 {
		t.Errorf("delete missing: %d", resp.StatusCode)
	}
	if resp := e.call("POST", ClientsPath, "", strings.NewReader(`{"name":"x","role":"agent"}`), "application/json", nil); resp.StatusCode != 401 {
		t.Errorf("create without a token: %d", resp.StatusCode)
	}
	// The agent role reaches only what is reserved for it.
	agentTok := e.token(created.ID, created.Secret)
	if resp := e.call("GET", "/agent/v1/desired", agentTok, nil, "", nil); resp.StatusCode != 200 {
		t.Errorf("agent on its API: %d", resp.StatusCode)
	}
	if resp := e.call("GET", "/app_pkgm/v1/onboarded_app_packages", agentTok, nil, "", nil); resp.StatusCode != 403 {
		t.Errorf("agent on an ETSI API: %d", resp.StatusCode)
	}
}

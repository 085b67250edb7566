package agentclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Tokens gets and caches the agent's OAuth 2.0 access token (client
// credentials grant at <api>/oauth2/token), renewing it a minute before it
// expires. With a static token (an operator's, for a bench) it only hands
// that out.
type Tokens struct {
	api          string
	clientID     string
	clientSecret string
	static       string
	http         *http.Client
	clock        func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

// NewTokens returns a token source; static, when set, is used as is. A nil
// hc means http.DefaultClient, a nil clock time.Now.
func NewTokens(api, clientID, clientSecret, static string, hc *http.Client, clock func() time.Time) *Tokens {
	if hc == nil {
		hc = http.DefaultClient
	}
	if clock == nil {
		clock = time.Now
	}
	return &Tokens{api: strings.TrimRight(api, "/"), clientID: clientID, clientSecret: clientSecret, static: static, http: hc, clock: clock}
}

// Get returns a valid token.
func (t *Tokens) Get(ctx context.Context) (string, error) {
	if t.static != "" {
		return t.static, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && t.clock().Before(t.expires.Add(-time.Minute)) {
		return t.token, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.api+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(t.clientID), url.QueryEscape(t.clientSecret))
	resp, err := t.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("get access token: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("get access token: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var tr struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tr); err != nil || tr.AccessToken == "" {
		return "", fmt.Errorf("get access token: unreadable answer")
	}
	t.token, t.expires = tr.AccessToken, t.clock().Add(time.Duration(tr.ExpiresIn)*time.Second)
	return t.token, nil
}

// Forget drops the cached token (the server refused it).
func (t *Tokens) Forget() {
	t.mu.Lock()
	t.token = ""
	t.mu.Unlock()
}

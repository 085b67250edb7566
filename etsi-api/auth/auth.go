// Package auth authenticates the callers of mecorch's APIs with bearer
// tokens, issued by an OAuth 2.0 client-credentials token endpoint
// (RFC 6749 section 4.4) to clients the operator registers.
//
// Roles: an operator may do everything; an app-provider may use the ETSI
// APIs (app packages and instances); agent is reserved for edge agents.
//
// Tokens are self-contained: HS256-signed JWTs carrying the client ID, its
// role and an expiry, checked without a lookup of the token itself. Each
// authenticated request still reads the client from the store, on purpose:
// deleting a client must cut it off at once, not when its last token
// expires, and one keyed read per request is cheap next to what the request
// itself does.
//
// A bootstrap token (MECORCH_ADMIN_TOKEN, Config.AdminToken) is accepted as
// an operator so that the first clients can be created.
//
// Secrets, tokens and Authorization headers are never logged.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mecorch/mecorch/etsi-api/httpmw"
	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
)

// Role is what a client may do.
type Role string

// The roles.
const (
	RoleOperator    Role = "operator"     // everything
	RoleAppProvider Role = "app-provider" // the ETSI app package and instance APIs
	RoleAgent       Role = "agent"        // reserved for edge agents
)

// Roles lists the valid roles.
func Roles() []Role { return []Role{RoleOperator, RoleAppProvider, RoleAgent} }

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return slices.Contains(Roles(), r) }

// covers reports whether a holder of r may act as want: an operator may act
// as anyone, others only as themselves.
func (r Role) covers(want Role) bool { return r == RoleOperator || r == want }

// AdminClientID is the client ID of requests made with the bootstrap admin
// token. Generated client IDs are UUIDs and never collide with it.
const AdminClientID = "mecorch-admin"

// Realm is the realm of every WWW-Authenticate challenge.
const Realm = "mecorch"

// Config configures an Authenticator.
type Config struct {
	// AdminToken, when set, is accepted as the bearer token of an operator
	// (MECORCH_ADMIN_TOKEN). At least 16 bytes.
	AdminToken string
	// SigningKey signs tokens (HMAC-SHA256, at least 32 bytes). Empty: a
	// random key is made at New, and tokens die with the process.
	SigningKey []byte
	// TokenTTL is the lifetime of issued tokens (1h if zero).
	TokenTTL time.Duration
}

// Minimum lengths of the configured secrets.
const (
	minAdminToken = 16
	minSigningKey = 32
)

// Authenticator issues and checks tokens and keeps the OAuth clients.
type Authenticator struct {
	store mec.Store
	clock func() time.Time
	log   *slog.Logger

	key       []byte
	ttl       time.Duration
	adminHash [sha256.Size]byte
	hasAdmin  bool
	// dummy is the stored form of no secret at all: verifying against it
	// for an unknown client ID costs what a real check costs, so response
	// times do not tell which client IDs exist.
	dummy clientRecord
}

// New returns an Authenticator keeping its clients in store.
func New(cfg Config, store mec.Store, clock func() time.Time, log *slog.Logger) (*Authenticator, error) {
	if store == nil || clock == nil || log == nil {
		return nil, errors.New("auth: store, clock and logger are required")
	}
	a := &Authenticator{store: store, clock: clock, log: log, ttl: cfg.TokenTTL}
	switch {
	case a.ttl == 0:
		a.ttl = time.Hour
	case a.ttl < time.Second:
		return nil, fmt.Errorf("auth: token TTL %v is shorter than a second", cfg.TokenTTL)
	}
	if cfg.AdminToken != "" {
		if len(cfg.AdminToken) < minAdminToken {
			return nil, fmt.Errorf("auth: admin token is shorter than %d bytes", minAdminToken)
		}
		a.adminHash, a.hasAdmin = sha256.Sum256([]byte(cfg.AdminToken)), true
	}
	switch {
	case len(cfg.SigningKey) == 0:
		a.key = make([]byte, minSigningKey)
		if _, err := rand.Read(a.key); err != nil {
			return nil, fmt.Errorf("auth: generate signing key: %w", err)
		}
		log.Info("no token signing key configured: using a random one; issued tokens will not survive a restart")
	case len(cfg.SigningKey) < minSigningKey:
		return nil, fmt.Errorf("auth: signing key is %d bytes, want at least %d", len(cfg.SigningKey), minSigningKey)
	default:
		a.key = slices.Clone(cfg.SigningKey)
	}
	dummy, err := newClientRecord("", "", RoleAgent, make([]byte, saltLen), time.Time{})
	if err != nil {
		return nil, err
	}
	a.dummy = dummy
	return a, nil
}

// Principal is who made a request.
type Principal struct {
	ClientID string
	Role     Role
}

type principalKey struct{}

// PrincipalFrom returns the principal Require authenticated.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// WithPrincipal returns ctx carrying p, for work done on a principal's
// behalf outside an HTTP request.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// Require admits requests carrying a valid bearer token of one of roles (an
// operator is always admitted; no roles admits any authenticated client)
// and puts the Principal in the request context. A missing, invalid or
// expired token, or one of a deleted client, is answered 401; a token of
// another role 403.
func (a *Authenticator) Require(roles ...Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, err := a.authenticate(r)
			if err != nil {
				var denied *deniedError
				if !errors.As(err, &denied) {
					a.log.Error("authenticate request", "err", err)
					problem.WriteError(w, r, err)
					return
				}
				a.log.Debug("request not authenticated", "path", r.URL.Path, "reason", denied.reason)
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error="invalid_token", error_description=%q`, Realm, denied.reason))
				problem.Write(w, r, problem.Details{Status: http.StatusUnauthorized, Detail: "authentication required: " + denied.reason})
				return
			}
			httpmw.NoteClientID(r.Context(), p.ClientID)
			if len(roles) > 0 && !slices.ContainsFunc(roles, p.Role.covers) {
				a.log.Debug("request forbidden", "path", r.URL.Path, "client", p.ClientID, "role", p.Role)
				w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q, error="insufficient_scope"`, Realm))
				problem.Write(w, r, problem.Details{Status: http.StatusForbidden,
					Detail: fmt.Sprintf("role %s may not use this resource", p.Role)})
				return
			}
			next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
		})
	}
}

// deniedError is an authentication failure the client caused; its reason
// goes back to the client and never holds the token.
type deniedError struct{ reason string }

func (e *deniedError) Error() string { return e.reason }

func denied(reason string) error { return &deniedError{reason} }

// IsDenied tells an authentication failure the client caused (a bad,
// expired or revoked token) from a failure of the server.
func IsDenied(err error) bool {
	var d *deniedError
	return errors.As(err, &d)
}

func (a *Authenticator) authenticate(r *http.Request) (Principal, error) {
	token, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return Principal{}, denied("no bearer token")
	}
	return a.Authenticate(r.Context(), token)
}

// Authenticate checks a bearer token that came without an HTTP request (an
// agent's hello on SCTP). A token the client got wrong is an error whose
// text is safe to tell the client; IsDenied tells it from a store failure.
func (a *Authenticator) Authenticate(ctx context.Context, token string) (Principal, error) {
	if a.hasAdmin {
		// Hashing first makes the comparison constant-time whatever the
		// length of the presented token.
		h := sha256.Sum256([]byte(token))
		if subtle.ConstantTimeCompare(h[:], a.adminHash[:]) == 1 {
			return Principal{ClientID: AdminClientID, Role: RoleOperator}, nil
		}
	}
	c, err := a.verifyToken(token)
	if err != nil {
		return Principal{}, err
	}
	rec, _, err := a.loadClient(ctx, c.Subject)
	if errors.Is(err, mec.ErrNotFound) {
		return Principal{}, denied("the token's client no longer exists")
	}
	if err != nil {
		return Principal{}, fmt.Errorf("load client %s: %w", c.Subject, err)
	}
	if !rec.Role.covers(c.Role) {
		return Principal{}, denied("the token's role is no longer the client's")
	}
	return Principal{ClientID: c.Subject, Role: c.Role}, nil
}

// bearer extracts the token of an "Authorization: Bearer <token>" header;
// the scheme is case-insensitive (RFC 9110 11.1).
func bearer(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

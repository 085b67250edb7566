package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/mecorch/mecorch/etsi-api/httpmw"
	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
)

// Paths of the handlers, for the caller's mux.
const (
	TokenPath   = "/oauth2/token"
	ClientsPath = "/api/v1/clients"
)

// Body limits: a token request is a few short form fields, a client
// creation a name and a role.
const (
	maxTokenRequest  = 16 << 10
	maxClientRequest = 64 << 10
)

// tokenResponse is the RFC 6749 section 5.1 answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
}

// oauthError is an RFC 6749 section 5.2 error answer. The token endpoint
// answers these, not ProblemDetails: OAuth client libraries parse them.
type oauthError struct {
	status      int
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func invalidRequest(format string, args ...any) *oauthError {
	return &oauthError{status: http.StatusBadRequest, Code: "invalid_request", Description: fmt.Sprintf(format, args...)}
}

func invalidClient() *oauthError {
	return &oauthError{status: http.StatusUnauthorized, Code: "invalid_client", Description: "client authentication failed"}
}

// TokenHandler is the token endpoint: POST, form-encoded, grant_type
// client_credentials, the client authenticated by HTTP Basic or by
// client_id and client_secret form fields, an optional scope naming the
// role the token should carry (the client's own, or any for an operator).
// Mount it at TokenPath.
func (a *Authenticator) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			problem.Write(w, r, problem.Details{Status: http.StatusMethodNotAllowed, Detail: "the token endpoint takes POST"})
			return
		}
		resp, oerr, err := a.token(w, r)
		// RFC 6749 5.1: token answers, good or bad, must not be cached.
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		switch {
		case err != nil:
			a.log.Error("token request", "err", err)
			problem.WriteError(w, r, err)
		case oerr != nil:
			if oerr.status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", fmt.Sprintf("Basic realm=%q", Realm))
			}
			writeJSON(w, oerr.status, oerr)
		default:
			writeJSON(w, http.StatusOK, resp)
		}
	})
}

func (a *Authenticator) token(w http.ResponseWriter, r *http.Request) (*tokenResponse, *oauthError, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, invalidRequest("the body must be application/x-www-form-urlencoded"), nil
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequest)
	if err := r.ParseForm(); err != nil {
		return nil, invalidRequest("the form does not parse"), nil
	}
	form := r.PostForm // never the query string: credentials do not belong in URLs
	for k, v := range form {
		if len(v) > 1 { // RFC 6749 3.2
			return nil, invalidRequest("parameter %s is repeated", k), nil
		}
	}
	switch gt := form.Get("grant_type"); gt {
	case "":
		return nil, invalidRequest("grant_type is missing"), nil
	case "client_credentials":
	default:
		return nil, &oauthError{status: http.StatusBadRequest, Code: "unsupported_grant_type",
			Description: "only client_credentials is supported"}, nil
	}

	id, secret, oerr := clientCredentials(r, form)
	if oerr != nil {
		return nil, oerr, nil
	}
	rec, ok, err := a.checkCredentials(r.Context(), id, secret)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		a.log.Info("token refused: client authentication failed", "client", id)
		return nil, invalidClient(), nil
	}

	role := rec.Role
	if scope := form.Get("scope"); scope != "" {
		want := Role(scope)
		if !want.Valid() || !rec.Role.covers(want) {
			return nil, &oauthError{status: http.StatusBadRequest, Code: "invalid_scope",
				Description: fmt.Sprintf("scope must be one role this client may act as (its own: %s)", rec.Role)}, nil
		}
		role = want
	}
	token, exp, err := a.mintToken(rec.ID, role)
	if err != nil {
		return nil, nil, err
	}
	httpmw.NoteClientID(r.Context(), rec.ID)
	a.log.Info("token issued", "client", rec.ID, "role", role, "expires", exp)
	return &tokenResponse{AccessToken: token, TokenType: "Bearer", ExpiresIn: int64(exp.Sub(a.clock()).Round(time.Second) / time.Second), Scope: string(role)}, nil, nil
}

// clientCredentials reads the client's ID and secret from HTTP Basic (RFC
// 6749 2.3.1: both form-urlencoded before base64) or from the form, and
// refuses a request that uses both.
func clientCredentials(r *http.Request, form url.Values) (id, secret string, oerr *oauthError) {
	formID, formSecret := form.Get("client_id"), form.Get("client_secret")
	if user, pass, ok := r.BasicAuth(); ok {
		if formSecret != "" {
			return "", "", invalidRequest("use one client authentication method, not Basic and client_secret")
		}
		var err1, err2 error
		id, err1 = url.QueryUnescape(user)
		secret, err2 = url.QueryUnescape(pass)
		if err1 != nil || err2 != nil {
			return "", "", invalidClient()
		}
		if formID != "" && formID != id {
			return "", "", invalidRequest("client_id differs from the Basic credentials")
		}
	} else {
		id, secret = formID, formSecret
	}
	if id == "" || secret == "" {
		return "", "", invalidClient()
	}
	return id, secret, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// createClientRequest is the body of POST /api/v1/clients.
type createClientRequest struct {
	Name string `json:"name"`
	Role Role   `json:"role"`
}

// createdClient answers it: the only time the secret is shown.
type createdClient struct {
	Client
	Secret string `json:"clientSecret"`
}

// ClientsHandler serves the operator API for OAuth clients, for operators
// only (it applies Require(RoleOperator) itself):
//
//	POST   /api/v1/clients       {"name": ..., "role": ...} → 201 {clientId, clientSecret, ...}
//	GET    /api/v1/clients       → 200 [{clientId, name, role, createdAt}]
//	GET    /api/v1/clients/{id}  → 200 {clientId, name, role, createdAt}
//	DELETE /api/v1/clients/{id}  → 204
//
// Mount it on both ClientsPath and ClientsPath+"/".
func (a *Authenticator) ClientsHandler() http.Handler {
	mux := http.NewServeMux()
	op := a.Require(RoleOperator)
	mux.Handle("POST "+ClientsPath, op(http.HandlerFunc(a.createClient)))
	mux.Handle("GET "+ClientsPath, op(http.HandlerFunc(a.listClients)))
	mux.Handle("GET "+ClientsPath+"/{id}", op(http.HandlerFunc(a.getClient)))
	mux.Handle("DELETE "+ClientsPath+"/{id}", op(http.HandlerFunc(a.deleteClient)))
	return mux
}

func (a *Authenticator) createClient(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		problem.Write(w, r, problem.Details{Status: http.StatusUnsupportedMediaType, Detail: "the body must be application/json"})
		return
	}
	var req createClientRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxClientRequest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			problem.Write(w, r, problem.Details{Status: http.StatusRequestEntityTooLarge, Detail: err.Error()})
			return
		}
		problem.WriteError(w, r, problem.Invalid("the body is not a client: "+err.Error(), mec.InvalidParam{Name: "body", Reason: err.Error()}))
		return
	}
	id, secret, err := a.CreateClient(r.Context(), req.Name, req.Role)
	if err != nil {
		a.logUnexpected("create client", err)
		problem.WriteError(w, r, err)
		return
	}
	c, err := a.GetClient(r.Context(), id)
	if err != nil {
		a.logUnexpected("read created client", err)
		problem.WriteError(w, r, err)
		return
	}
	w.Header().Set("Location", ClientsPath+"/"+url.PathEscape(id))
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, createdClient{Client: c, Secret: secret})
}

func (a *Authenticator) listClients(w http.ResponseWriter, r *http.Request) {
	cs, err := a.ListClients(r.Context())
	if err != nil {
		a.logUnexpected("list clients", err)
		problem.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, cs)
}

func (a *Authenticator) getClient(w http.ResponseWriter, r *http.Request) {
	c, err := a.GetClient(r.Context(), r.PathValue("id"))
	if err != nil {
		a.logUnexpected("get client", err)
		problem.WriteError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

func (a *Authenticator) deleteClient(w http.ResponseWriter, r *http.Request) {
	if err := a.DeleteClient(r.Context(), r.PathValue("id")); err != nil {
		a.logUnexpected("delete client", err)
		problem.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// logUnexpected logs errors that are not the caller's doing (those are
// answered, not logged).
func (a *Authenticator) logUnexpected(what string, err error) {
	var pe *problem.Error
	if errors.As(err, &pe) || errors.Is(err, mec.ErrNotFound) {
		return
	}
	a.log.Error(what, "err", err)
}

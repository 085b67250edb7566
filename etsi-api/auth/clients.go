package auth

import (
	"context"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
)

// Client is a registered OAuth client as the API shows it: never its
// secret.
type Client struct {
	ID        string    `json:"clientId"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
}

// clientRecord is a client as stored (mec.KindClient): the secret only as
// a salted PBKDF2-HMAC-SHA256 hash.
type clientRecord struct {
	ID         string    `json:"id"`
	Name       string    `json:"name"`
	Role       Role      `json:"role"`
	KDF        string    `json:"kdf"`
	Iterations int       `json:"iterations"`
	Salt       []byte    `json:"salt"`
	SecretHash []byte    `json:"secretHash"`
	CreatedAt  time.Time `json:"createdAt"`
}

// Secret hashing. Secrets are 256 random bits made here, never chosen by a
// person, so no iteration count makes them easier or harder to guess; the
// count is kept low because every token request pays it, and an attacker
// could make the token endpoint burn CPU with a high one. It is stored per
// client so that it can be raised without invalidating existing secrets.
const (
	kdfName       = "pbkdf2-sha256"
	kdfIterations = 4096
	saltLen       = 16
	secretLen     = 32
	maxNameLen    = 128
)

func newClientRecord(id, name string, role Role, secret []byte, createdAt time.Time) (clientRecord, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return clientRecord{}, fmt.Errorf("generate salt: %w", err)
	}
	rec := clientRecord{ID: id, Name: name, Role: role, KDF: kdfName, Iterations: kdfIterations, Salt: salt, CreatedAt: createdAt}
	h, err := rec.hash(string(secret))
	if err != nil {
		return clientRecord{}, err
	}
	rec.SecretHash = h
	return rec, nil
}

func (rec clientRecord) hash(secret string) ([]byte, error) {
	if rec.KDF != kdfName || rec.Iterations <= 0 {
		return nil, fmt.Errorf("client %s: unsupported secret hash %q", rec.ID, rec.KDF)
	}
	h, err := pbkdf2.Key(sha256.New, secret, rec.Salt, rec.Iterations, sha256.Size)
	if err != nil {
		return nil, fmt.Errorf("hash secret: %w", err)
	}
	return h, nil
}

// verifySecret reports whether secret is the client's, in constant time.
func (rec clientRecord) verifySecret(secret string) bool {
	h, err := rec.hash(secret)
	return err == nil && subtle.ConstantTimeCompare(h, rec.SecretHash) == 1
}

func (rec clientRecord) public() Client {
	return Client{ID: rec.ID, Name: rec.Name, Role: rec.Role, CreatedAt: rec.CreatedAt}
}

// validateClient checks what a caller may choose about a new client; the
// error is a 400 problem naming the wrong fields.
func validateClient(name string, role Role) error {
	var bad []mec.InvalidParam
	switch {
	case strings.TrimSpace(name) == "":
		bad = append(bad, mec.InvalidParam{Name: "name", Reason: "must not be empty"})
	case len(name) > maxNameLen:
		bad = append(bad, mec.InvalidParam{Name: "name", Reason: fmt.Sprintf("longer than %d bytes", maxNameLen)})
	case strings.ContainsFunc(name, unicode.IsControl):
		bad = append(bad, mec.InvalidParam{Name: "name", Reason: "contains control characters"})
	}
	if !role.Valid() {
		bad = append(bad, mec.InvalidParam{Name: "role", Reason: fmt.Sprintf("must be one of %v", Roles())})
	}
	if bad != nil {
		return problem.Invalid("invalid client", bad...)
	}
	return nil
}

// CreateClient registers a client and returns its ID and secret. The secret
// is returned only here: the store keeps a hash. A bad name or role is a 400
// *problem.Error.
func (a *Authenticator) CreateClient(ctx context.Context, name string, role Role) (clientID, secret string, err error) {
	if err := validateClient(name, role); err != nil {
		return "", "", err
	}
	raw := make([]byte, secretLen)
	if _, err := rand.Read(raw); err != nil {
		return "", "", fmt.Errorf("generate client secret: %w", err)
	}
	secret = base64.RawURLEncoding.EncodeToString(raw)
	rec, err := newClientRecord(mec.NewID(), name, role, []byte(secret), a.clock().UTC())
	if err != nil {
		return "", "", err
	}
	err = a.store.Update(ctx, func(tx mec.Tx) error {
		_, err := mec.Save(tx, mec.KindClient, rec.ID, rec, mec.MustNotExist)
		return err
	})
	if err != nil {
		return "", "", fmt.Errorf("create client %q: %w", name, err)
	}
	a.log.Info("oauth client created", "client", rec.ID, "name", name, "role", role)
	return rec.ID, secret, nil
}

// ListClients returns every client, ordered by ID.
func (a *Authenticator) ListClients(ctx context.Context) ([]Client, error) {
	var recs []clientRecord
	err := a.store.View(ctx, func(tx mec.Tx) error {
		var err error
		recs, err = mec.LoadAll[clientRecord](tx, mec.KindClient)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list clients: %w", err)
	}
	out := make([]Client, 0, len(recs))
	for _, rec := range recs {
		out = append(out, rec.public())
	}
	return out, nil
}

// GetClient returns one client, or an error wrapping mec.ErrNotFound.
func (a *Authenticator) GetClient(ctx context.Context, id string) (Client, error) {
	rec, _, err := a.loadClient(ctx, id)
	if err != nil {
		return Client{}, err
	}
	return rec.public(), nil
}

// DeleteClient removes a client; its tokens stop working at once. A
// missing client is an error wrapping mec.ErrNotFound.
func (a *Authenticator) DeleteClient(ctx context.Context, id string) error {
	err := a.store.Update(ctx, func(tx mec.Tx) error {
		return tx.Delete(mec.KindClient, id, mec.AnyVersion)
	})
	if err != nil {
		return fmt.Errorf("delete client %s: %w", id, err)
	}
	a.log.Info("oauth client deleted", "client", id)
	return nil
}

func (a *Authenticator) loadClient(ctx context.Context, id string) (clientRecord, int64, error) {
	if id == "" {
		return clientRecord{}, 0, fmt.Errorf("client with an empty ID: %w", mec.ErrNotFound)
	}
	var (
		rec clientRecord
		ver int64
	)
	err := a.store.View(ctx, func(tx mec.Tx) error {
		var err error
		rec, ver, err = mec.Load[clientRecord](tx, mec.KindClient, id)
		return err
	})
	if err != nil {
		return clientRecord{}, 0, fmt.Errorf("client %s: %w", id, err)
	}
	return rec, ver, nil
}

// checkCredentials returns the client whose ID and secret these are. For
// an unknown ID it still hashes the secret, so that timing does not reveal
// which client IDs exist.
func (a *Authenticator) checkCredentials(ctx context.Context, id, secret string) (clientRecord, bool, error) {
	rec, _, err := a.loadClient(ctx, id)
	if errors.Is(err, mec.ErrNotFound) {
		a.dummy.verifySecret(secret)
		return clientRecord{}, false, nil
	}
	if err != nil {
		return clientRecord{}, false, err
	}
	return rec, rec.verifySecret(secret), nil
}

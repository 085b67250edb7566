package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Tokens are JWTs (RFC 7519) signed with HS256, so that standard tooling
// can read them, but only one header is ever accepted: the exact bytes we
// issue. That closes the classic JWT holes (alg "none", algorithm
// confusion) without parsing the header at all.
const (
	tokenHeader = `{"alg":"HS256","typ":"JWT"}`
	issuer      = "mecorch"
)

func encodedHeader() string { return base64.RawURLEncoding.EncodeToString([]byte(tokenHeader)) }

// claims is a token's payload.
type claims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"` // client ID
	Role     Role   `json:"role"`
	Scope    string `json:"scope"`
	IssuedAt int64  `json:"iat"`
	Expires  int64  `json:"exp"`
}

// mintToken signs a token for clientID acting as role, valid for the TTL.
func (a *Authenticator) mintToken(clientID string, role Role) (string, time.Time, error) {
	now := a.clock()
	exp := now.Add(a.ttl)
	payload, err := json.Marshal(claims{Issuer: issuer, Subject: clientID, Role: role, Scope: string(role), IssuedAt: now.Unix(), Expires: exp.Unix()})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("encode token claims: %w", err)
	}
	signed := encodedHeader() + "." + base64.RawURLEncoding.EncodeToString(payload)
	return signed + "." + base64.RawURLEncoding.EncodeToString(a.sign(signed)), exp, nil
}

func (a *Authenticator) sign(s string) []byte {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(s))
	return m.Sum(nil)
}

// verifyToken checks a token's signature, issuer and expiry. Its errors
// are deniedErrors whose reasons say what was wrong, never what the token
// held.
func (a *Authenticator) verifyToken(token string) (claims, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[0] != encodedHeader() {
		return claims{}, denied("malformed token")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, a.sign(parts[0]+"."+parts[1])) {
		return claims{}, denied("token signature does not verify")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return claims{}, denied("malformed token")
	}
	var c claims
	if err := json.Unmarshal(payload, &c); err != nil {
		return claims{}, denied("malformed token")
	}
	if c.Issuer != issuer || c.Subject == "" || !c.Role.Valid() {
		return claims{}, denied("token was not issued by mecorch")
	}
	if !a.clock().Before(time.Unix(c.Expires, 0)) {
		return claims{}, denied("token expired")
	}
	return c, nil
}

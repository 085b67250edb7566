package appd

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// Checksum is a hash with the name of its algorithm, as in the manifest of
// an app package and in the MEC 010-2 Checksum type.
type Checksum struct {
	Algorithm string `json:"algorithm" yaml:"algorithm"`
	Hash      string `json:"hash" yaml:"hash"`
}

// newHash accepts the NFV-SOL 004 names (SHA-256, SHA-512), the IANA
// textual names (sha-256) and the forms without the hyphen, in any case.
func newHash(algorithm string) (hash.Hash, string, error) {
	switch strings.ReplaceAll(strings.ToUpper(strings.TrimSpace(algorithm)), "-", "") {
	case "SHA256":
		return sha256.New(), "SHA-256", nil
	case "SHA384":
		return sha512.New384(), "SHA-384", nil
	case "SHA512":
		return sha512.New(), "SHA-512", nil
	}
	return nil, "", fmt.Errorf("unsupported checksum algorithm %q (supported: SHA-256, SHA-384, SHA-512)", algorithm)
}

// checkHashFormat checks that the algorithm is supported and the hash is a
// hex string of the right length, without hashing anything.
func checkHashFormat(c Checksum) error {
	h, name, err := newHash(c.Algorithm)
	if err != nil {
		return err
	}
	want := 2 * h.Size()
	if len(c.Hash) != want {
		return fmt.Errorf("%s hash must be %d hex digits, not %d characters", name, want, len(c.Hash))
	}
	if _, err := hex.DecodeString(c.Hash); err != nil {
		return fmt.Errorf("%s hash is not hexadecimal", name)
	}
	return nil
}

// VerifyChecksum checks data against c. Algorithm names are matched
// without regard to case or hyphen ("SHA-256", "sha256"); the hash is
// compared case-insensitively. An unsupported algorithm is an error, never
// a silent pass.
func VerifyChecksum(data []byte, c Checksum) error {
	if err := checkHashFormat(c); err != nil {
		return err
	}
	h, name, _ := newHash(c.Algorithm)
	h.Write(data)
	got := hex.EncodeToString(h.Sum(nil))
	if !strings.EqualFold(got, c.Hash) {
		return fmt.Errorf("%s mismatch: expected %s, got %s", name, strings.ToLower(c.Hash), got)
	}
	return nil
}

package appd

import (
	"encoding/hex"
	"strings"
	"testing"
)

func TestVerifyChecksum(t *testing.T) {
	data := []byte("edge-echo\n")
	const (
		sha256Hex = "2ce29ae68b1ef43d3bf7ab9a3c7cd2f4d8e3bbd5cbb98ccc24b10b13c1ae0a20"
	)
	sum256 := func() string { return hashHex(t, "SHA-256", data) }
	sum512 := func() string { return hashHex(t, "SHA-512", data) }
	tests := []struct {
		name    string
		c       Checksum
		wantErr string
	}{
		{"SHA-256", Checksum{"SHA-256", sum256()}, ""},
		{"sha256 upper-case hex", Checksum{"sha256", strings.ToUpper(sum256())}, ""},
		{"sha-256", Checksum{"sha-256", sum256()}, ""},
		{"SHA-512", Checksum{"SHA-512", sum512()}, ""},
		{"sha512", Checksum{"Sha512", sum512()}, ""},
		{"SHA-384", Checksum{"SHA-384", hashHex(t, "SHA-384", data)}, ""},
		{"mismatch", Checksum{"SHA-256", sha256Hex}, "SHA-256 mismatch"},
		{"wrong length", Checksum{"SHA-512", sum256()}, "128 hex digits"},
		{"not hex", Checksum{"SHA-256", strings.Repeat("zz", 32)}, "not hexadecimal"},
		{"unsupported", Checksum{"MD5", "d41d8cd98f00b204e9800998ecf8427e"}, "unsupported checksum algorithm"},
		{"empty algorithm", Checksum{"", sum256()}, "unsupported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyChecksum(data, tt.c)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error = %v, want …%s…", err, tt.wantErr)
			}
		})
	}
}

func hashHex(t *testing.T, alg string, data []byte) string {
	t.Helper()
	h, _, err := newHash(alg)
	if err != nil {
		t.Fatal(err)
	}
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// Package rules holds what both store engines must agree on beyond the
// mec.Store interface itself: which keys and documents are acceptable and how
// version mismatches are reported. Keeping it in one place is what lets the
// embedded engine and Postgres fail the same inputs with the same errors, so
// that a test passing on one engine says something about the other.
package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/mecorch/mecorch/mec"
)

// Limits on keys. Postgres caps a btree entry near 2.7 kB and bbolt a key at
// 32 kB; these leave room for both with margin, and no real ID comes close.
const (
	MaxKindLen = 64
	MaxIDLen   = 512
)

// ErrReadOnly is returned by writes attempted inside View.
var ErrReadOnly = errors.New("write in a read-only transaction")

// CheckKind validates a kind name.
func CheckKind(kind mec.Kind) error {
	if err := checkText(string(kind), MaxKindLen); err != nil {
		return fmt.Errorf("kind %q: %w", kind, err)
	}
	return nil
}

// CheckKey validates a document key.
func CheckKey(kind mec.Kind, id string) error {
	if err := CheckKind(kind); err != nil {
		return err
	}
	if err := checkText(id, MaxIDLen); err != nil {
		return fmt.Errorf("%s id %q: %w (%w)", kind, id, err, mec.ErrInvalid)
	}
	return nil
}

// CheckBlobID validates a blob ID.
func CheckBlobID(id string) error {
	if err := checkText(id, MaxIDLen); err != nil {
		return fmt.Errorf("blob id %q: %w", id, err)
	}
	return nil
}

// checkText refuses what Postgres' text type cannot hold (NUL, invalid
// UTF-8), so that the embedded engine does not accept keys a migration to
// Postgres would later choke on.
func checkText(s string, max int) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > max:
		return fmt.Errorf("longer than %d bytes", max)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	case bytes.IndexByte([]byte(s), 0) >= 0:
		return errors.New("contains a NUL byte")
	}
	return nil
}

// CheckDoc validates a document: it must be JSON that Postgres' jsonb
// accepts. jsonb refuses the escape \u0000, which encoding/json accepts, so
// that is checked too.
func CheckDoc(kind mec.Kind, id string, doc []byte) error {
	if !json.Valid(doc) {
		return fmt.Errorf("%s %q: document is not valid JSON: %w", kind, id, mec.ErrInvalid)
	}
	if hasNULEscape(doc) {
		return fmt.Errorf("%s %q: document contains the escape \\u0000, which jsonb cannot store: %w", kind, id, mec.ErrInvalid)
	}
	return nil
}

// hasNULEscape reports whether doc holds a real \u0000 escape, as opposed to
// an escaped backslash followed by the text u0000.
func hasNULEscape(doc []byte) bool {
	pat := []byte(`\u0000`)
	for off := 0; ; {
		i := bytes.Index(doc[off:], pat)
		if i < 0 {
			return false
		}
		i += off
		slashes := 0
		for j := i - 1; j >= 0 && doc[j] == '\\'; j-- {
			slashes++
		}
		if slashes%2 == 0 {
			return true
		}
		off = i + 1
	}
}

// CheckPutVersion validates ifVersion for Put.
func CheckPutVersion(v int64) error {
	if v < mec.AnyVersion {
		return fmt.Errorf("ifVersion %d: want AnyVersion, MustNotExist or a version read", v)
	}
	return nil
}

// CheckDeleteVersion validates ifVersion for Delete. MustNotExist makes no
// sense there (a delete that succeeds only when there is nothing to delete),
// so it is refused rather than given an arbitrary meaning.
func CheckDeleteVersion(v int64) error {
	if v != mec.AnyVersion && v < 1 {
		return fmt.Errorf("ifVersion %d: want AnyVersion or a version read", v)
	}
	return nil
}

// NotFound reports a missing document.
func NotFound(kind mec.Kind, id string) error {
	return fmt.Errorf("%s %q: %w", kind, id, mec.ErrNotFound)
}

// Exists reports a create of a document that is already there.
func Exists(kind mec.Kind, id string) error {
	return fmt.Errorf("%s %q: %w", kind, id, mec.ErrExists)
}

// Conflict reports a version mismatch; have is 0 when the document is gone.
func Conflict(kind mec.Kind, id string, want, have int64) error {
	if have == 0 {
		return fmt.Errorf("%s %q: expected version %d, document is gone: %w", kind, id, want, mec.ErrConflict)
	}
	return fmt.Errorf("%s %q: expected version %d, found %d: %w", kind, id, want, have, mec.ErrConflict)
}

// BlobNotFound reports a missing blob.
func BlobNotFound(id string) error {
	return fmt.Errorf("blob %q: %w", id, mec.ErrNotFound)
}

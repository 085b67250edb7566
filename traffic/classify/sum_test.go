package classify

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// TestGeneratedUpToDate checks, without clang, that the committed bpf2go
// output was generated from the current C sources: classify.sum holds their
// SHA-256 from the last `go generate`.
func TestGeneratedUpToDate(t *testing.T) {
	f, err := os.Open("classify.sum")
	if err != nil {
		t.Fatalf("classify.sum: %v (run make generate)", err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		want, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("classify.sum: bad line %q", sc.Text())
		}
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got := sha256.Sum256(b)
		if hex.EncodeToString(got[:]) != want {
			t.Errorf("%s changed since the BPF objects were generated: run make generate", name)
		}
		seen[name] = true
	}
	for _, name := range []string{"classify.c", "classify.h", "steer.h", "return_path.h"} {
		if !seen[name] {
			t.Errorf("classify.sum lacks %s: run make generate", name)
		}
	}
}

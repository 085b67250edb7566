package qos

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// TestGeneratedUpToDate tells, without clang, whether qos_bpfel.{go,o} were
// generated from the C sources as they are now: qos.sum holds the sources'
// SHA-256 as of the last `make generate`.
func TestGeneratedUpToDate(t *testing.T) {
	b, err := os.ReadFile("qos.sum")
	if err != nil {
		t.Fatalf("%v (run make generate)", err)
	}
	want := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		sum, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("qos.sum: bad line %q", line)
		}
		want[name] = sum
	}
	for _, name := range []string{"qos.c", "qos.h"} {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		got := sha256.Sum256(src)
		switch w, ok := want[name]; {
		case !ok:
			t.Errorf("qos.sum lacks %s: run make generate", name)
		case w != hex.EncodeToString(got[:]):
			t.Errorf("%s changed since the BPF objects were generated: run make generate", name)
		}
	}
}

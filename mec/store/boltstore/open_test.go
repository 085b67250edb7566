package boltstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A second opener of the same directory must get a clear error quickly
// instead of waiting forever on bbolt's file lock. flock conflicts between
// two opens in one process as between two processes, so this stands for
// the two-process case.
func TestOpenInUse(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	_, err = Open(dir, Options{LockTimeout: 100 * time.Millisecond})
	if err == nil {
		t.Fatal("second Open of the same directory succeeded")
	}
	if !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("error %q does not say the store is in use", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("second Open took %s", d)
	}
}

func TestOpenCreatesDirectoryPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("database file mode %v is readable by others", fi.Mode().Perm())
	}
	if s.Path() != filepath.Join(dir, FileName) {
		t.Errorf("Path() = %q", s.Path())
	}
}

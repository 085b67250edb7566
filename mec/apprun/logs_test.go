package apprun

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestRotateAndTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), logFile)
	if err := rotateLog(path, 10); err != nil {
		t.Fatalf("rotate a missing log: %v", err)
	}
	if b, more, err := tailLog(path, 10); err != nil || len(b) != 0 || more {
		t.Fatalf("tail of nothing: %q %v %v", b, more, err)
	}
	write := func(s string) {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	write("0123456789")
	if err := rotateLog(path, 10); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".1"); !os.IsNotExist(err) {
		t.Fatal("rotated a log within its bound")
	}
	write("abcdefghij")
	if err := rotateLog(path, 8); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path + ".1"); string(b) != "cdefghij" {
		t.Fatalf(".1 = %q, want the last 8 bytes", b)
	}
	if fi, _ := os.Stat(path); fi.Size() != 0 {
		t.Fatalf("current log has %d bytes after rotation", fi.Size())
	}
	write("KLM")
	for _, c := range []struct {
		n    int
		want string
		more bool
	}{
		{2, "LM", true},
		{3, "KLM", true},
		{5, "ijKLM", true},
		{11, "cdefghijKLM", false},
		{100, "cdefghijKLM", false},
	} {
		b, more, err := tailLog(path, c.n)
		if err != nil || !bytes.Equal(b, []byte(c.want)) || more != c.more {
			t.Errorf("tail %d = %q, %v, %v; want %q, %v", c.n, b, more, err, c.want, c.more)
		}
	}
	if _, _, err := tailLog(path, 0); err == nil {
		t.Error("tail of 0 bytes accepted")
	}
}

package agentclient

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entry is one member of a test archive.
type entry struct {
	name   string
	mode   int64
	body   string
	link   string // a symlink to this, when set
	isDir  bool
	size   int64 // declared size, when it differs from len(body)
	noData bool  // stop after the header (for a declared size never written)
}

func tarOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hd := &tar.Header{Name: e.name, Mode: e.mode, Size: int64(len(e.body)), Typeflag: tar.TypeReg}
		switch {
		case e.link != "":
			hd.Typeflag, hd.Linkname, hd.Size = tar.TypeSymlink, e.link, 0
		case e.isDir:
			hd.Typeflag, hd.Size = tar.TypeDir, 0
		}
		if e.size != 0 {
			hd.Size = e.size
		}
		if err := tw.WriteHeader(hd); err != nil {
			t.Fatalf("tar header %s: %v", e.name, err)
		}
		if e.noData {
			// What was written so far is the archive: its last entry
			// claims more than follows.
			_ = tw.Flush()
			return buf.Bytes()
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatalf("tar body %s: %v", e.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zipOf(t *testing.T, entries ...entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		fh := &zip.FileHeader{Name: e.name, Method: zip.Store}
		mode := os.FileMode(e.mode)
		switch {
		case e.link != "":
			mode |= os.ModeSymlink
		case e.isDir:
			fh.Name = strings.TrimSuffix(e.name, "/") + "/"
			mode |= os.ModeDir
		}
		fh.SetMode(mode)
		w, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatalf("zip header %s: %v", e.name, err)
		}
		body := e.body
		if e.link != "" {
			body = e.link
		}
		if _, err := w.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

const script = "#!/bin/sh\necho app\n"

// layout is an image with decoys: a non-executable file at the top, a
// deeper executable first in order, a symlink, and two executables at
// the same depth, of which the first wins.
var layout = []entry{
	{name: "README.md", mode: 0o644, body: "read me\n"},
	{name: "lib/tools/helper", mode: 0o755, body: "#!/bin/sh\necho helper\n"},
	{name: "bin", mode: 0o755, isDir: true},
	{name: "run", mode: 0o777, link: "/bin/sh"},
	{name: "bin/app", mode: 0o750, body: script},
	{name: "bin/zzz", mode: 0o755, body: "#!/bin/sh\necho zzz\n"},
}

func TestUnpackFindsTheExecutable(t *testing.T) {
	cases := []struct {
		name     string // what the server calls the image
		data     func(t *testing.T) []byte
		want     string // the executable, relative to the image dir
		wantBody string
	}{
		{"app", func(*testing.T) []byte { return []byte(script) }, "app", script},
		{"app.tar.gz", func(t *testing.T) []byte { return gzipOf(t, tarOf(t, layout...)) }, "bin/app", script},
		{"app.tgz", func(t *testing.T) []byte { return gzipOf(t, tarOf(t, layout...)) }, "bin/app", script},
		{"app.tar", func(t *testing.T) []byte { return tarOf(t, layout...) }, "bin/app", script},
		{"app.zip", func(t *testing.T) []byte { return zipOf(t, layout...) }, "bin/app", script},
		{"top.tar", func(t *testing.T) []byte {
			return tarOf(t, entry{name: "a/b/c", mode: 0o755, body: "c"}, entry{name: "./top", mode: 0o700, body: "top"})
		}, "top", "top"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cache := t.TempDir()
			dir := filepath.Join(cache, "sha256", "k")
			exe, err := unpack(dir, c.name, c.data(t), maxImageBytes)
			if err != nil {
				t.Fatalf("unpack: %v", err)
			}
			if want := filepath.Join(dir, c.want); exe != want {
				t.Fatalf("executable = %s, want %s", exe, want)
			}
			fi, err := os.Stat(exe)
			if err != nil || fi.Mode()&0o100 == 0 {
				t.Fatalf("executable %s: %v, mode %v; want an executable file", exe, err, fi.Mode())
			}
			if b, _ := os.ReadFile(exe); string(b) != c.wantBody {
				t.Fatalf("executable holds %q, want %q", b, c.wantBody)
			}
			left, _ := os.ReadDir(filepath.Dir(dir))
			if len(left) != 1 {
				t.Fatalf("%d entries beside the image dir, want none (no temp dir left)", len(left)-1)
			}
			// Unpacked once: the same dir is reused whatever the data.
			again, err := unpack(dir, c.name, []byte("garbage"), maxImageBytes)
			if err != nil || again != exe {
				t.Fatalf("second unpack = %s, %v; want the cached %s", again, err, exe)
			}
			// An executable deleted from the cache comes back.
			if err := os.Remove(exe); err != nil {
				t.Fatal(err)
			}
			again, err = unpack(dir, c.name, c.data(t), maxImageBytes)
			if err != nil || again != exe {
				t.Fatalf("unpack after deletion = %s, %v; want %s again", again, err, exe)
			}
			if _, err := os.Stat(exe); err != nil {
				t.Fatalf("the deleted executable was not restored: %v", err)
			}
		})
	}
}

func TestUnpackRefuses(t *testing.T) {
	noExe := []entry{{name: "README", mode: 0o644, body: "x"}, {name: "bin", mode: 0o755, isDir: true}, {name: "sh", mode: 0o777, link: "/bin/sh"}}
	cases := []struct {
		name string
		data func(t *testing.T) []byte
		want string
	}{
		{"none.tar.gz", func(t *testing.T) []byte { return gzipOf(t, tarOf(t, noExe...)) }, "no executable"},
		{"none.tar", func(t *testing.T) []byte { return tarOf(t, noExe...) }, "no executable"},
		{"none.zip", func(t *testing.T) []byte { return zipOf(t, noExe...) }, "no executable"},
		{"empty.zip", func(t *testing.T) []byte { return zipOf(t) }, "no executable"},
		{"up.tar", func(t *testing.T) []byte { return tarOf(t, entry{name: "../x", mode: 0o755, body: "x"}) }, "leaves the image directory"},
		{"up.tar.gz", func(t *testing.T) []byte {
			return gzipOf(t, tarOf(t, entry{name: "ok", mode: 0o755, body: "ok"}, entry{name: "a/../../x", mode: 0o755, body: "x"}))
		}, "leaves the image directory"},
		{"abs.tar", func(t *testing.T) []byte { return tarOf(t, entry{name: "/tmp/x", mode: 0o755, body: "x"}) }, "leaves the image directory"},
		{"up.zip", func(t *testing.T) []byte { return zipOf(t, entry{name: "../x", mode: 0o755, body: "x"}) }, "leaves the image directory"},
		{"abs.zip", func(t *testing.T) []byte { return zipOf(t, entry{name: "/tmp/x", mode: 0o755, body: "x"}) }, "leaves the image directory"},
		{"marker.tar", func(t *testing.T) []byte { return tarOf(t, entry{name: exeMarker, mode: 0o755, body: "x"}) }, "collides"},
		{"bad.tar.gz", func(*testing.T) []byte { return []byte("this is not a gzip stream") }, "gzip"},
		{"bad.zip", func(*testing.T) []byte { return []byte("not zip") }, "zip"},
		{"crc.zip", func(t *testing.T) []byte {
			b := zipOf(t, entry{name: "app", mode: 0o755, body: "intact body"})
			i := bytes.Index(b, []byte("intact body"))
			b[i] = 'X'
			return b
		}, "checksum"},
		{"short.tar", func(t *testing.T) []byte {
			return tarOf(t, entry{name: "app", mode: 0o755, body: "x", size: 4096, noData: true})
		}, "EOF"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cache := t.TempDir()
			// Nested, so that "../x" from the image dir would still land in
			// the test's own temp dir, where the test can see it.
			dir := filepath.Join(cache, "sha256", "k")
			exe, err := unpack(dir, c.name, c.data(t), maxImageBytes)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("unpack = %q, %v; want an error mentioning %q", exe, err, c.want)
			}
			if !strings.Contains(err.Error(), c.name) {
				t.Fatalf("error %q does not name the image", err)
			}
			for _, p := range []string{filepath.Join(cache, "sha256", "x"), filepath.Join(cache, "x"), dir} {
				if _, err := os.Lstat(p); err == nil {
					t.Fatalf("%s exists after a refused image", p)
				}
			}
			if left, _ := os.ReadDir(filepath.Dir(dir)); len(left) != 0 {
				t.Fatalf("left behind: %v", left)
			}
		})
	}
}

func TestUnpackLimit(t *testing.T) {
	big := strings.Repeat("a", 600)
	twoBig := []entry{{name: "app", mode: 0o755, body: big}, {name: "data", mode: 0o644, body: big}}
	cases := []struct {
		name  string
		data  func(t *testing.T) []byte
		limit int64
	}{
		// Compressed, far below the limit; declared, above it.
		{"two.tar.gz", func(t *testing.T) []byte { return gzipOf(t, tarOf(t, twoBig...)) }, 1000},
		{"two.tar", func(t *testing.T) []byte { return tarOf(t, twoBig...) }, 1000},
		{"two.zip", func(t *testing.T) []byte { return zipOf(t, twoBig...) }, 1000},
		// Declared sizes whose sum wraps an int64 must not slip past the
		// check (the second entry's data never follows: a bomb would).
		{"wrap.tar.gz", func(t *testing.T) []byte {
			return gzipOf(t, tarOf(t, entry{name: "app", mode: 0o755, body: "x"},
				entry{name: "bomb", mode: 0o644, size: math.MaxInt64, noData: true}))
		}, maxImageBytes},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "k")
			exe, err := unpack(dir, c.name, c.data(t), c.limit)
			if err == nil || !strings.Contains(err.Error(), "image limit") {
				t.Fatalf("unpack = %q, %v; want the image limit refused", exe, err)
			}
		})
	}
	// At the limit exactly, it unpacks.
	dir := filepath.Join(t.TempDir(), "k")
	if _, err := unpack(dir, "two.tar", tarOf(t, twoBig...), 1200); err != nil {
		t.Fatalf("unpack at the limit: %v", err)
	}
}

func TestBetter(t *testing.T) {
	cases := []struct {
		cur, cand string
		exec      bool
		want      string
	}{
		{"", "a/b", true, "a/b"},
		{"", "a", false, ""},
		{"a/b", "c", true, "c"},
		{"a/b", "c", false, "a/b"},
		{"a/b", "c/d", true, "a/b"},
		{"x", "a/b", true, "x"},
	}
	for _, c := range cases {
		if got := better(c.cur, c.cand, c.exec); got != c.want {
			t.Errorf("better(%q, %q, %v) = %q, want %q", c.cur, c.cand, c.exec, got, c.want)
		}
	}
}

package agentclient

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mecorch/mecorch/etsi-api/auth"
	"github.com/mecorch/mecorch/mec/agentproto"
)

// served is an instance's image as the image server hands it out.
type served struct {
	name string
	data []byte
	sum  string // X-Mecorch-Image-Sha256; "" means the data's real hash
}

// imageServer serves images the way etsi-api/agentapi.go does, behind
// mecorch's real token check, for host-1 only.
type imageServer struct {
	*authEnv
	mu      sync.Mutex
	images  map[string]served
	hits    map[string]int // image requests per instance
	refuse  map[string]int // answer 401 this many times first
	lastTok string
}

func newImageServer(t *testing.T) *imageServer {
	s := &imageServer{authEnv: newAuthEnv(t), images: map[string]served{}, hits: map[string]int{}, refuse: map[string]int{}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("instanceId")
		s.mu.Lock()
		s.hits[id]++
		s.lastTok = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		img, ok := s.images[id]
		refuse := s.refuse[id] > 0
		if refuse {
			s.refuse[id]--
		}
		s.mu.Unlock()
		switch {
		case refuse:
			http.Error(w, "token revoked", http.StatusUnauthorized)
			return
		case !ok || r.PathValue("hostId") != "host-1":
			http.Error(w, "no app instance "+id, http.StatusNotFound)
			return
		}
		sum := img.sum
		if sum == "" {
			h := sha256.Sum256(img.data)
			sum = hex.EncodeToString(h[:])
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("X-Mecorch-Image-Name", img.name)
		w.Header().Set("X-Mecorch-Image-Sha256", sum)
		w.Header().Set("Content-Length", strconv.Itoa(len(img.data)))
		_, _ = w.Write(img.data)
	})
	s.mux.Handle("GET /api/v1/hosts/{hostId}/app_instances/{instanceId}/image", s.auth.Require(auth.RoleAgent)(h))
	return s
}

func (s *imageServer) serve(id string, img served) {
	s.mu.Lock()
	s.images[id] = img
	s.mu.Unlock()
}

func (s *imageServer) hitsOf(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[id]
}

// fetcher returns an image fetcher of host-1 caching in a fresh dir.
func (s *imageServer) fetcher(t *testing.T) (*Images, string) {
	dir := filepath.Join(t.TempDir(), "images")
	return NewImages(s.srv.URL, "host-1", dir, s.tokens(), s.srv.Client()), dir
}

func inst(id string) agentproto.DesiredInstance {
	return agentproto.DesiredInstance{ID: id, AppDID: "appd-1", State: agentproto.ObservedRunning}
}

func TestFetchImages(t *testing.T) {
	s := newImageServer(t)
	cases := []struct {
		id   string
		img  served
		want string // the executable, relative to the image's dir
	}{
		{"plain", served{name: "app", data: []byte(script)}, "app"},
		{"tgz", served{name: "app.tar.gz", data: gzipOf(t, tarOf(t, layout...))}, "bin/app"},
		{"tar", served{name: "app.tar", data: tarOf(t, layout...)}, "bin/app"},
		{"zip", served{name: "app.zip", data: zipOf(t, layout...)}, "bin/app"},
		// The name is the server's word: only its base counts.
		{"path-name", served{name: "../../images/tool", data: []byte("#!/bin/sh\necho tool\n")}, "tool"},
		{"dotdot-name", served{name: "..", data: []byte("#!/bin/sh\necho dotdot\n")}, "image"},
		{"marker-name", served{name: exeMarker, data: []byte("#!/bin/sh\necho marker\n")}, "image"},
		{"upper-sum", served{name: "u", data: []byte("#!/bin/sh\necho u\n")}, "u"},
	}
	for _, c := range cases {
		if c.id == "upper-sum" {
			h := sha256.Sum256(c.img.data)
			c.img.sum = strings.ToUpper(hex.EncodeToString(h[:]))
		}
		s.serve(c.id, c.img)
	}
	im, dir := s.fetcher(t)
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			exe, err := im.Fetch(testCtx(t), inst(c.id))
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			sum := sha256.Sum256(c.img.data)
			if want := filepath.Join(dir, "sha256", hex.EncodeToString(sum[:]), c.want); exe != want {
				t.Fatalf("Fetch = %s, want %s", exe, want)
			}
			if fi, err := os.Stat(exe); err != nil || fi.Mode()&0o100 == 0 {
				t.Fatalf("%s: %v; want an executable file", exe, err)
			}
			if link, err := os.Readlink(filepath.Join(dir, "instances", c.id)); err != nil || link != exe {
				t.Fatalf("instance link = %q, %v; want %s", link, err, exe)
			}
		})
	}
	if n := s.tokenReq.Load(); n != 1 {
		t.Fatalf("%d token requests for %d images, want 1 (the token is cached)", n, len(cases))
	}
	s.mustAccept(s.lastTok)
}

func TestFetchCaches(t *testing.T) {
	s := newImageServer(t)
	img := served{name: "app.tar.gz", data: gzipOf(t, tarOf(t, layout...))}
	s.serve("a", img)
	s.serve("b", img)
	im, dir := s.fetcher(t)
	ctx := testCtx(t)

	exeA, err := im.Fetch(ctx, inst("a"))
	if err != nil {
		t.Fatalf("Fetch a: %v", err)
	}
	again, err := im.Fetch(ctx, inst("a"))
	if err != nil || again != exeA {
		t.Fatalf("second Fetch a = %s, %v; want %s", again, err, exeA)
	}
	if n := s.hitsOf("a"); n != 1 {
		t.Fatalf("%d image requests for instance a, want 1 (the second Fetch is served from the link)", n)
	}

	exeB, err := im.Fetch(ctx, inst("b"))
	if err != nil || exeB != exeA {
		t.Fatalf("Fetch b = %s, %v; want the same unpacked %s", exeB, err, exeA)
	}
	if unpacked, _ := os.ReadDir(filepath.Join(dir, "sha256")); len(unpacked) != 1 {
		t.Fatalf("%d entries under sha256/, want one unpacked dir shared by both instances", len(unpacked))
	}

	// A fetcher restarted over the same dir, with mecorch gone, still
	// finds what it ran.
	s.srv.Close()
	restarted := NewImages(s.srv.URL, "host-1", dir, s.tokens(), s.srv.Client())
	if exe, err := restarted.Fetch(ctx, inst("b")); err != nil || exe != exeA {
		t.Fatalf("Fetch after a restart, offline = %s, %v; want %s", exe, err, exeA)
	}

	// Forget drops the link, and the next Fetch goes to mecorch.
	restarted.Forget("b")
	if _, err := os.Lstat(filepath.Join(dir, "instances", "b")); !os.IsNotExist(err) {
		t.Fatalf("the link of a forgotten instance: %v, want it gone", err)
	}
	if _, err := restarted.Fetch(ctx, inst("b")); err == nil {
		t.Fatal("Fetch of a forgotten instance with mecorch gone succeeded, want a download error")
	}
}

func TestFetchRefusesBadContent(t *testing.T) {
	s := newImageServer(t)
	other := sha256.Sum256([]byte("something else"))
	s.serve("tampered", served{name: "app", data: []byte(script), sum: hex.EncodeToString(other[:])})
	s.serve("big", served{name: "app", data: []byte(strings.Repeat("x", 2000))})
	s.serve("bomb", served{name: "app.tar.gz", data: gzipOf(t, tarOf(t,
		entry{name: "app", mode: 0o755, body: strings.Repeat("a", 600)},
		entry{name: "data", mode: 0o644, body: strings.Repeat("b", 600)}))})
	s.serve("empty", served{name: "app.zip", data: zipOf(t, entry{name: "README", mode: 0o644, body: "x"})})
	cases := []struct{ id, want string }{
		{"tampered", "SHA-256"},
		{"big", "larger than 1000 bytes"},
		{"bomb", "image limit"},
		{"empty", "no executable"},
		{"missing", "404"},
	}
	im, dir := s.fetcher(t)
	im.maxBytes = 1000
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			exe, err := im.Fetch(testCtx(t), inst(c.id))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Fetch = %q, %v; want an error mentioning %q", exe, err, c.want)
			}
			if _, err := os.Lstat(filepath.Join(dir, "instances", c.id)); !os.IsNotExist(err) {
				t.Fatalf("a refused image is linked: %v", err)
			}
		})
	}
	if unpacked, _ := os.ReadDir(filepath.Join(dir, "sha256")); len(unpacked) != 0 {
		t.Fatalf("refused images left %d entries under sha256/", len(unpacked))
	}
}

func TestFetchUnauthorizedForgetsToken(t *testing.T) {
	s := newImageServer(t)
	s.serve("a", served{name: "app", data: []byte(script)})
	s.refuse["a"] = 1
	im, _ := s.fetcher(t)
	ctx := testCtx(t)

	if _, err := im.Fetch(ctx, inst("a")); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Fetch: %v, want the 401", err)
	}
	refused := s.lastTok
	s.clock.advance(time.Second) // the next token is minted in another second
	exe, err := im.Fetch(ctx, inst("a"))
	if err != nil {
		t.Fatalf("Fetch after the 401: %v", err)
	}
	if n := s.tokenReq.Load(); n != 2 {
		t.Fatalf("%d token requests, want 2 (the refused token forgotten)", n)
	}
	if s.lastTok == refused {
		t.Fatal("the retry carried the refused token")
	}
	s.mustAccept(s.lastTok)
	if _, err := os.Stat(exe); err != nil {
		t.Fatal(err)
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mecorch/mecorch/internal/pgtest"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/lifecycle"
	"github.com/mecorch/mecorch/mec/store/boltstore"
	"github.com/mecorch/mecorch/mec/store/pgstore"
)

// TestKillDuringWrites kills mecorch with SIGKILL while clients create and
// instantiate app instances, restarts it, and checks that everything it
// acknowledged is there and that no half-written instance or reservation is
// left, on both store engines.
func TestKillDuringWrites(t *testing.T) {
	bin := buildBinary(t)
	engines := map[string]func(t *testing.T) (arg string, open func() mec.Store){
		"embedded": func(t *testing.T) (string, func() mec.Store) {
			dir := filepath.Join(t.TempDir(), "store")
			return dir, func() mec.Store {
				s, err := boltstore.Open(dir, boltstore.Options{})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
		},
		"postgres": func(t *testing.T) (string, func() mec.Store) {
			dsn := pgtest.Start(t)
			return dsn, func() mec.Store {
				s, err := pgstore.Open(context.Background(), dsn, pgstore.Options{})
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
		},
	}
	for name, engine := range engines {
		t.Run(name, func(t *testing.T) {
			storeArg, open := engine(t)
			c := &client{t: t, token: "restart-test-token"}
			p := startServer(t, bin, storeArg, c)
			setupInventory(t, c)
			acked := &ackLog{instances: map[string]bool{}, instantiated: map[string]bool{}}
			for cycle := 0; cycle < 3; cycle++ {
				stop := make(chan struct{})
				var wg sync.WaitGroup
				for w := 0; w < 4; w++ {
					wg.Add(1)
					go func() { defer wg.Done(); writeUntil(c, stop, acked) }()
				}
				time.Sleep(time.Duration(300+150*cycle) * time.Millisecond)
				if err := p.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				_ = p.Wait()
				close(stop)
				wg.Wait()
				p = startServer(t, bin, storeArg, c)
				checkAcked(t, c, acked)
			}
			_ = p.Process.Signal(syscall.SIGKILL)
			_ = p.Wait()
			if len(acked.instances) == 0 || len(acked.instantiated) == 0 {
				t.Fatalf("the load acknowledged %d creations and %d instantiations; the test proved nothing", len(acked.instances), len(acked.instantiated))
			}
			s := open()
			defer s.Close()
			checkConsistent(t, s)
			t.Logf("%d instances and %d instantiations acknowledged across 3 kills", len(acked.instances), len(acked.instantiated))
		})
	}
}

type ackLog struct {
	mu           sync.Mutex
	instances    map[string]bool
	instantiated map[string]bool
}

// writeUntil creates and instantiates instances until stop, recording what
// the server acknowledged. Errors are expected once the server is killed.
func writeUntil(c *client, stop chan struct{}, acked *ackLog) {
	for {
		select {
		case <-stop:
			return
		default:
		}
		code, body, _ := c.do("POST", "/app_lcm/v1/app_instances", map[string]any{"appDId": c.appDID, "appInstanceName": "restart"})
		if code != http.StatusCreated {
			time.Sleep(5 * time.Millisecond)
			continue
		}
		var in struct{ ID string }
		_ = json.Unmarshal(body, &in)
		acked.mu.Lock()
		acked.instances[in.ID] = true
		acked.mu.Unlock()
		code, _, _ = c.do("POST", "/app_lcm/v1/app_instances/"+in.ID+"/instantiate", map[string]any{})
		if code == http.StatusAccepted {
			acked.mu.Lock()
			acked.instantiated[in.ID] = true
			acked.mu.Unlock()
		}
	}
}

// checkAcked reads every acknowledged instance back through the API.
func checkAcked(t *testing.T, c *client, acked *ackLog) {
	t.Helper()
	acked.mu.Lock()
	defer acked.mu.Unlock()
	for id := range acked.instances {
		code, body, err := c.do("GET", "/app_lcm/v1/app_instances/"+id, nil)
		if err != nil || code != http.StatusOK {
			t.Fatalf("acknowledged instance %s lost after kill -9: %d %s %v", id, code, body, err)
		}
		if acked.instantiated[id] {
			var in map[string]any
			_ = json.Unmarshal(body, &in)
			if in["x-mecorch"] == nil {
				t.Fatalf("acknowledged instantiation of %s lost its placement: %s", id, body)
			}
		}
	}
}

// checkConsistent verifies the store's invariants directly: each host's
// allocation is exactly the sum of its instances' reservations, the spread
// counters match the placed instances, and every placed instance has an
// operation that tracks it.
func checkConsistent(t *testing.T, s mec.Store) {
	t.Helper()
	err := s.View(context.Background(), func(tx mec.Tx) error {
		hosts, err := mec.LoadAll[mec.Host](tx, mec.KindHost)
		if err != nil {
			return err
		}
		insts, err := mec.LoadAll[mec.AppInstance](tx, mec.KindAppInstance)
		if err != nil {
			return err
		}
		sum := map[string]mec.Resources{}
		peers := map[string]map[string]int{} // spread key → site → placed instances
		for _, in := range insts {
			if in.HostID != "" {
				if peers[in.Constraints.SpreadKey] == nil {
					peers[in.Constraints.SpreadKey] = map[string]int{}
				}
				peers[in.Constraints.SpreadKey][in.SiteID]++
			}
			if in.HostID == "" {
				if in.Reserved != (mec.Resources{}) {
					return fmt.Errorf("instance %s holds a reservation on no host", in.ID)
				}
				continue
			}
			sum[in.HostID] = sum[in.HostID].Add(in.Reserved)
			if in.PendingOpID == "" && in.InstantiationState != mec.Instantiated {
				return fmt.Errorf("instance %s is placed on %s with no operation and not instantiated", in.ID, in.HostID)
			}
			if in.PendingOpID != "" {
				op, _, err := mec.Load[mec.LcmOpOcc](tx, mec.KindLcmOpOcc, in.PendingOpID)
				if err != nil {
					return fmt.Errorf("instance %s: pending operation: %w", in.ID, err)
				}
				if op.AppInstanceID != in.ID {
					return fmt.Errorf("operation %s belongs to %s, not %s", op.ID, op.AppInstanceID, in.ID)
				}
			}
		}
		byHost := map[string][]string{}
		for _, in := range insts {
			if in.HostID != "" {
				byHost[in.HostID] = append(byHost[in.HostID], in.ID)
			}
		}
		idx, err := mec.LoadAll[lifecycle.HostInstances](tx, mec.KindHostInstances)
		if err != nil {
			return err
		}
		if len(idx) != len(byHost) {
			return fmt.Errorf("%d host indexes stored, %d hosts have instances", len(idx), len(byHost))
		}
		for _, x := range idx {
			if !slices.Equal(x.Instances, byHost[x.HostID]) { // both sorted by instance ID
				return fmt.Errorf("host %s index %v, instances say %v", x.HostID, x.Instances, byHost[x.HostID])
			}
		}
		groups, err := mec.LoadAll[lifecycle.SpreadGroup](tx, mec.KindSpreadGroup)
		if err != nil {
			return err
		}
		if len(groups) != len(peers) {
			return fmt.Errorf("%d spread groups stored, %d in use", len(groups), len(peers))
		}
		for _, g := range groups {
			if !maps.Equal(g.Sites, peers[g.Key]) {
				return fmt.Errorf("spread group %s counts %v, instances say %v", g.Key, g.Sites, peers[g.Key])
			}
		}
		for _, h := range hosts {
			if h.Allocated != sum[h.ID] {
				return fmt.Errorf("host %s: allocated %+v but its instances reserve %+v", h.ID, h.Allocated, sum[h.ID])
			}
			if !h.Capacity.Fits(h.Allocated) {
				return fmt.Errorf("host %s over-committed: %+v of %+v", h.ID, h.Allocated, h.Capacity)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// client is a tiny API client with the operator token.
type client struct {
	t      *testing.T
	base   string
	token  string
	appDID string
}

func (c *client) do(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if b, ok := body.([]byte); ok {
		rd = bytes.NewReader(b)
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if _, ok := body.([]byte); ok {
		req.Header.Set("Content-Type", "application/zip")
	} else if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	cl := &http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (c *client) must(method, path string, body any, want int) []byte {
	c.t.Helper()
	code, b, err := c.do(method, path, body)
	if err != nil || code != want {
		c.t.Fatalf("%s %s: got %d %s (%v), want %d", method, path, code, b, err, want)
	}
	return b
}

func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "mecorch")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build mecorch: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer starts mecorch on a fresh port and waits for /healthz.
func startServer(t *testing.T, bin, storeArg string, c *client) *exec.Cmd {
	t.Helper()
	addr := freePort(t)
	logf, err := os.CreateTemp(t.TempDir(), "mecorch-*.log")
	if err != nil {
		t.Fatal(err)
	}
	p := exec.Command(bin, "serve", "--listen", addr, "--store", storeArg, "--admin-token", c.token)
	p.Stdout, p.Stderr = logf, logf
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Process.Kill() })
	c.base = "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if code, _, err := c.do("GET", "/healthz", nil); err == nil && code == http.StatusOK {
			return p
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(logf.Name())
	t.Fatalf("mecorch did not become healthy:\n%s", log)
	return nil
}

// setupInventory registers a site with three hosts and onboards the sample
// package.
func setupInventory(t *testing.T, c *client) {
	t.Helper()
	c.must("POST", "/api/v1/sites", map[string]any{"id": "site-a", "name": "Site A", "zone": "z1", "latitude": 48.1, "longitude": 11.5}, http.StatusCreated)
	for i := 0; i < 3; i++ {
		c.must("POST", "/api/v1/hosts", map[string]any{"id": fmt.Sprintf("host-%d", i), "siteId": "site-a",
			"capacity": map[string]any{"vcpu": 1000, "memoryMiB": 1 << 22, "storageGB": 100000}}, http.StatusCreated)
	}
	zip, err := os.ReadFile("../../examples/edge-echo.zip")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(zip)
	b := c.must("POST", "/app_pkgm/v1/onboarded_app_packages", map[string]any{
		"appPkgName": "edge-echo", "appPkgVersion": "1.0", "appPkgPath": "http://example.invalid/edge-echo.zip",
		"checksum": map[string]any{"algorithm": "SHA-256", "hash": hex.EncodeToString(sum[:])},
	}, http.StatusCreated)
	var pkg struct{ ID string }
	_ = json.Unmarshal(b, &pkg)
	code, body, err := c.do("PUT", "/app_pkgm/v1/onboarded_app_packages/"+pkg.ID+"/package_content", zip)
	if err != nil || code/100 != 2 {
		t.Fatalf("upload: %d %s %v", code, body, err)
	}
	b = c.must("GET", "/app_pkgm/v1/onboarded_app_packages/"+pkg.ID, nil, http.StatusOK)
	var info struct {
		AppDID          string `json:"appDId"`
		OnboardingState string
	}
	_ = json.Unmarshal(b, &info)
	if info.OnboardingState != "ONBOARDED" {
		t.Fatalf("package not onboarded: %s", b)
	}
	c.appDID = info.AppDID
}

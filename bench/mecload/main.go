// Command mecload measures mecorch's API throughput for app instance
// creation and instantiation on each store engine. It runs the real server
// in-process on a loopback listener and drives it with concurrent HTTP
// clients, then prints requests per second and latency percentiles.
//
//	go run ./bench/mecload -engines embedded,postgres -n 2000 -c 16
//
// The postgres engine needs -pg-dsn, or starts a throwaway cluster itself
// when PostgreSQL's binaries are installed.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	etsiapi "github.com/mecorch/mecorch/etsi-api"
	"github.com/mecorch/mecorch/internal/pgtest"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/store/boltstore"
	"github.com/mecorch/mecorch/mec/store/pgstore"
)

// loadToken is the operator token of the in-process server.
const loadToken = "mecload-operator-token"

func main() {
	engines := flag.String("engines", "embedded", "comma-separated: embedded, postgres")
	n := flag.Int("n", 2000, "instances to create and instantiate per engine")
	conc := flag.Int("c", 16, "concurrent clients")
	hosts := flag.Int("hosts", 50, "hosts to spread the instances over")
	pgDSN := flag.String("pg-dsn", "", "Postgres DSN (default: start a throwaway cluster)")
	pkg := flag.String("package", "examples/edge-echo.zip", "app package to onboard")
	flag.Parse()
	for _, e := range strings.Split(*engines, ",") {
		if err := run(strings.TrimSpace(e), *n, *conc, *hosts, *pgDSN, *pkg); err != nil {
			fmt.Fprintln(os.Stderr, "mecload:", e+":", err)
			os.Exit(1)
		}
	}
}

func run(engine string, n, conc, hosts int, pgDSN, pkgPath string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var store mec.Store
	switch engine {
	case "embedded":
		dir, err := os.MkdirTemp("", "mecload-*")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if store, err = boltstore.Open(dir, boltstore.Options{}); err != nil {
			return err
		}
	case "postgres":
		if pgDSN == "" {
			cl, err := pgtest.StartCluster()
			if err != nil {
				return err
			}
			defer cl.Stop()
			pgDSN = cl.DSN("postgres")
		}
		var err error
		if store, err = pgstore.Open(ctx, pgDSN, pgstore.Options{}); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown engine %q", engine)
	}
	defer store.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := etsiapi.New(etsiapi.Config{BaseURL: base, AdminToken: loadToken, StoreEngine: engine}, store, time.Now, log, prometheus.NewRegistry())
	if err != nil {
		return err
	}
	go func() { _ = srv.Run(ctx) }()
	hs := &http.Server{Handler: srv.Handler()}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()

	c := &client{base: base, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}}}
	appDID, err := setup(c, hosts, n, pkgPath)
	if err != nil {
		return err
	}
	create := make([]time.Duration, 0, n)
	inst := make([]time.Duration, 0, n)
	var mu sync.Mutex
	var next, failed atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				t0 := time.Now()
				code, body, err := c.do("POST", "/app_lcm/v1/app_instances", map[string]any{"appDId": appDID})
				t1 := time.Now()
				if err != nil || code != http.StatusCreated {
					failed.Add(1)
					continue
				}
				var in struct{ ID string }
				_ = json.Unmarshal(body, &in)
				code, _, err = c.do("POST", "/app_lcm/v1/app_instances/"+in.ID+"/instantiate", map[string]any{})
				t2 := time.Now()
				if err != nil || code != http.StatusAccepted {
					failed.Add(1)
				}
				mu.Lock()
				create = append(create, t1.Sub(t0))
				inst = append(inst, t2.Sub(t1))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("engine=%s instances=%d clients=%d hosts=%d elapsed=%s failed=%d\n", engine, n, conc, hosts, el.Round(time.Millisecond), failed.Load())
	fmt.Printf("  create+instantiate pairs/s: %.0f  (HTTP requests/s: %.0f)\n", float64(len(create))/el.Seconds(), float64(2*len(create))/el.Seconds())
	fmt.Printf("  POST app_instances   p50 %s  p99 %s\n", pct(create, 50), pct(create, 99))
	fmt.Printf("  POST .../instantiate p50 %s  p99 %s\n", pct(inst, 50), pct(inst, 99))
	if failed.Load() > 0 {
		return fmt.Errorf("%d requests failed", failed.Load())
	}
	return nil
}

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[(len(s)-1)*p/100].Round(time.Microsecond)
}

// setup registers hosts with room for every instance and onboards the
// package.
func setup(c *client, hosts, n int, pkgPath string) (string, error) {
	if _, err := c.must("POST", "/api/v1/sites", map[string]any{"id": "load-site", "name": "load"}, 201); err != nil {
		return "", err
	}
	per := n/hosts + 1
	for i := 0; i < hosts; i++ {
		if _, err := c.must("POST", "/api/v1/hosts", map[string]any{"id": fmt.Sprintf("load-host-%d", i), "siteId": "load-site",
			"capacity": map[string]any{"vcpu": 2 * per, "memoryMiB": 1024 * per, "storageGB": 100 * per}}, 201); err != nil {
			return "", err
		}
	}
	zip, err := os.ReadFile(pkgPath)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(zip)
	b, err := c.must("POST", "/app_pkgm/v1/onboarded_app_packages", map[string]any{"appPkgName": "load", "appPkgVersion": "1",
		"appPkgPath": "http://example.invalid/p.zip", "checksum": map[string]any{"algorithm": "SHA-256", "hash": hex.EncodeToString(sum[:])}}, 201)
	if err != nil {
		return "", err
	}
	var p struct{ ID string }
	_ = json.Unmarshal(b, &p)
	if code, body, err := c.do("PUT", "/app_pkgm/v1/onboarded_app_packages/"+p.ID+"/package_content", zip); err != nil || code/100 != 2 {
		return "", fmt.Errorf("upload: %d %s %v", code, body, err)
	}
	b, err = c.must("GET", "/app_pkgm/v1/onboarded_app_packages/"+p.ID, nil, 200)
	if err != nil {
		return "", err
	}
	var info struct {
		AppDID string `json:"appDId"`
	}
	_ = json.Unmarshal(b, &info)
	return info.AppDID, nil
}

type client struct {
	base string
	hc   *http.Client
}

func (c *client) do(method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	ct := "application/json"
	if b, ok := body.([]byte); ok {
		rd, ct = bytes.NewReader(b), "application/zip"
	} else if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+loadToken)
	if body != nil {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func (c *client) must(method, path string, body any, want int) ([]byte, error) {
	code, b, err := c.do(method, path, body)
	if err != nil {
		return nil, err
	}
	if code != want {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, code, b)
	}
	return b, nil
}

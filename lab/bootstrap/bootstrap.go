// Package bootstrap fills a freshly started lab's mecorch with what the
// topology says: its sites and cells (from node labels), waits for the
// edge hosts' agents to register, then onboards an app package and
// instantiates it, so that a newcomer's `make run` shows the whole system
// at work. Every step is idempotent: running it twice changes nothing.
//
// Node labels it reads (containerlab accepts any labels):
//
//	mecorch.site:  the site the node is at (sites are created from these)
//	mecorch.cells: comma-separated cell ids MCC-MNC-NRCELLID a gNB node serves
//	mecorch.host:  "true" on a node whose agent registers a host
package bootstrap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/mecorch/mecorch/appd"
	"github.com/mecorch/mecorch/lab/topology"
)

// Config says where mecorch is and what to deploy.
type Config struct {
	API, Token string
	// Package is the app package (CSAR zip) to onboard and instantiate;
	// empty: none.
	Package string
	// Wait bounds each wait (mecorch healthy, agents registered, the
	// instance running).
	Wait   time.Duration
	Logger *slog.Logger
	HTTP   *http.Client
}

// Result is what was deployed.
type Result struct {
	Sites, Cells, Hosts []string
	AppDID, InstanceID  string
	InstanceHost        string
}

// Label keys.
const (
	LabelSite  = "mecorch.site"
	LabelCells = "mecorch.cells"
	LabelHost  = "mecorch.host"
)

// Run bootstraps the lab t.
func Run(ctx context.Context, t *topology.Topology, cfg Config) (Result, error) {
	if cfg.Wait == 0 {
		cfg.Wait = 90 * time.Second
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := client{cfg: cfg}
	var res Result
	if err := c.until(ctx, "mecorch healthy", func() error { return c.do(ctx, "GET", "/healthz", nil, nil, 200) }); err != nil {
		return res, err
	}
	sites := map[string]bool{}
	for _, n := range t.Nodes {
		if s := n.Labels[LabelSite]; s != "" {
			sites[s] = true
		}
	}
	for _, s := range sortedKeys(sites) {
		if err := c.create(ctx, "/api/v1/sites", map[string]any{"id": s, "name": s}); err != nil {
			return res, err
		}
		res.Sites = append(res.Sites, s)
	}
	for _, n := range t.Nodes {
		cells := n.Labels[LabelCells]
		if cells == "" {
			continue
		}
		ran := nodeAddress(t, n.Name)
		for _, id := range strings.Split(cells, ",") {
			parts := strings.Split(strings.TrimSpace(id), "-")
			if len(parts) != 3 {
				return res, fmt.Errorf("node %s: cell %q is not MCC-MNC-NRCELLID", n.Name, id)
			}
			body := map[string]any{"nrcgi": map[string]any{"plmn": map[string]string{"mcc": parts[0], "mnc": parts[1]}, "nrcellId": parts[2]},
				"siteId": n.Labels[LabelSite]}
			if ran != "" {
				body["ranAddress"] = ran
			}
			if err := c.create(ctx, "/api/v1/cells", body); err != nil {
				return res, err
			}
			res.Cells = append(res.Cells, strings.TrimSpace(id))
		}
	}
	for _, n := range t.Nodes {
		if n.Labels[LabelHost] != "true" {
			continue
		}
		host := n.Name
		if err := c.until(ctx, "host "+host+" Ready", func() error {
			var h struct{ State string }
			if err := c.do(ctx, "GET", "/api/v1/hosts/"+host, nil, &h, 200); err != nil {
				return err
			}
			if h.State != "Ready" {
				return fmt.Errorf("host %s is %s", host, h.State)
			}
			return nil
		}); err != nil {
			return res, err
		}
		res.Hosts = append(res.Hosts, host)
	}
	if cfg.Package == "" {
		return res, nil
	}
	return c.deploy(ctx, res)
}

// nodeAddress is the first address of the node's links.
func nodeAddress(t *topology.Topology, node string) string {
	for _, l := range t.Links {
		for _, e := range []topology.Endpoint{l.A, l.B} {
			if e.Node == node && e.Addr.IsValid() {
				return e.Addr.Addr().String()
			}
		}
	}
	return ""
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// deploy onboards the package (unless an onboarded one has its appDId) and
// instantiates it (unless an instance of it exists), then waits until the
// instance runs.
func (c client) deploy(ctx context.Context, res Result) (Result, error) {
	data, err := os.ReadFile(c.cfg.Package)
	if err != nil {
		return res, err
	}
	sum := sha256.Sum256(data)
	var pkgs []struct {
		ID, AppDID, OnboardingState string
		Checksum                    struct{ Hash string }
	}
	if err := c.do(ctx, "GET", "/app_pkgm/v1/onboarded_app_packages", nil, &pkgs, 200); err != nil {
		return res, err
	}
	// A package of the same content is reused: onboarded, or left
	// CREATED by an interrupted run (its content is uploaded again).
	var pkgID string
	for _, p := range pkgs {
		if !strings.EqualFold(p.Checksum.Hash, hex.EncodeToString(sum[:])) {
			continue
		}
		if p.OnboardingState == "ONBOARDED" {
			res.AppDID, pkgID = p.AppDID, p.ID
			break
		}
		if p.OnboardingState == "CREATED" {
			pkgID = p.ID
		}
	}
	// Another build of the same app (a store kept from an earlier run of an
	// older checkout): mecorch takes one package per appDId, so that one is
	// used, and the log says how to start afresh.
	if res.AppDID == "" {
		if local, err := appd.ReadPackage(data, appd.Limits{}); err == nil && local.AppD != nil {
			for _, p := range pkgs {
				if p.OnboardingState == "ONBOARDED" && p.AppDID == local.AppD.AppDID {
					c.cfg.Logger.Warn("an older build of the lab's app is onboarded already; using it (remove the lab's store to onboard this one)",
						"appDId", p.AppDID, "package", p.ID)
					res.AppDID, pkgID = p.AppDID, p.ID
					break
				}
			}
		}
	}
	if res.AppDID == "" {
		if pkgID == "" {
			var pkg struct{ ID string }
			if err := c.do(ctx, "POST", "/app_pkgm/v1/onboarded_app_packages", map[string]any{"appPkgName": "lab-app", "appPkgVersion": "1.0.0",
				"checksum": map[string]string{"algorithm": "SHA-256", "hash": hex.EncodeToString(sum[:])}}, &pkg, 201); err != nil {
				return res, err
			}
			pkgID = pkg.ID
		}
		if err := c.raw(ctx, "PUT", "/app_pkgm/v1/onboarded_app_packages/"+pkgID+"/package_content", "application/zip", data, nil, 202); err != nil {
			return res, err
		}
		if err := c.until(ctx, "package onboarded", func() error {
			var p struct{ AppDID, OnboardingState string }
			if err := c.do(ctx, "GET", "/app_pkgm/v1/onboarded_app_packages/"+pkgID, nil, &p, 200); err != nil {
				return err
			}
			if p.OnboardingState != "ONBOARDED" {
				return fmt.Errorf("package is %s", p.OnboardingState)
			}
			res.AppDID = p.AppDID
			return nil
		}); err != nil {
			return res, err
		}
	}
	// An instance of the app is reused, instantiated or not; one not
	// instantiated (an interrupted run) is instantiated now.
	var insts []struct {
		ID, AppDID, InstantiationState string
	}
	if err := c.do(ctx, "GET", "/app_lcm/v1/app_instances", nil, &insts, 200); err != nil {
		return res, err
	}
	state := ""
	for _, in := range insts {
		if in.AppDID == res.AppDID && (res.InstanceID == "" || in.InstantiationState == "INSTANTIATED") {
			res.InstanceID, state = in.ID, in.InstantiationState
		}
	}
	if res.InstanceID == "" {
		var in struct{ ID string }
		if err := c.do(ctx, "POST", "/app_lcm/v1/app_instances", map[string]string{"appDId": res.AppDID, "appInstanceName": "lab-app-1"}, &in, 201); err != nil {
			return res, err
		}
		res.InstanceID, state = in.ID, "NOT_INSTANTIATED"
	}
	if state == "NOT_INSTANTIATED" {
		// 409: an instantiation is already in progress; it is waited for.
		err := c.do(ctx, "POST", "/app_lcm/v1/app_instances/"+res.InstanceID+"/instantiate", map[string]any{}, nil, 202)
		if se, ok := err.(*statusError); err != nil && !(ok && se.status == http.StatusConflict) {
			return res, err
		}
	}
	err = c.until(ctx, "instance running", func() error {
		var in struct {
			InstantiationState string `json:"instantiationState"`
			Ext                struct {
				HostID, ObservedState string
			} `json:"x-mecorch"`
		}
		if err := c.do(ctx, "GET", "/app_lcm/v1/app_instances/"+res.InstanceID, nil, &in, 200); err != nil {
			return err
		}
		if in.InstantiationState != "INSTANTIATED" || in.Ext.ObservedState != "Running" {
			return fmt.Errorf("instance is %s/%s", in.InstantiationState, in.Ext.ObservedState)
		}
		res.InstanceHost = in.Ext.HostID
		return nil
	})
	return res, err
}

type client struct{ cfg Config }

// create POSTs a resource; one that exists already (409) is fine.
func (c client) create(ctx context.Context, path string, body any) error {
	err := c.do(ctx, "POST", path, body, nil, 201)
	if se, ok := err.(*statusError); ok && se.status == http.StatusConflict {
		return nil
	}
	return err
}

type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return e.msg }

func (c client) do(ctx context.Context, method, path string, body, out any, want int) error {
	var data []byte
	if body != nil {
		var err error
		if data, err = json.Marshal(body); err != nil {
			return err
		}
	}
	return c.raw(ctx, method, path, "application/json", data, out, want)
}

func (c client) raw(ctx context.Context, method, path, ctype string, body []byte, out any, want int) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.cfg.API, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.cfg.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return &statusError{status: resp.StatusCode, msg: fmt.Sprintf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))}
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// until retries f every 200 ms until it succeeds or Wait passes.
func (c client) until(ctx context.Context, what string, f func() error) error {
	deadline := time.Now().Add(c.cfg.Wait)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bootstrap: waited %s for %s: %w", c.cfg.Wait, what, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

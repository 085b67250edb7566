package applcm

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mecorch/mecorch/appd"
	"github.com/mecorch/mecorch/etsi-api/spectest"
	"github.com/mecorch/mecorch/internal/pgtest"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/catalog"
	"github.com/mecorch/mecorch/mec/lifecycle"
	"github.com/mecorch/mecorch/mec/placement"
	"github.com/mecorch/mecorch/mec/store/boltstore"
	"github.com/mecorch/mecorch/mec/store/pgstore"
)

// pg is one throwaway Postgres cluster for the package's tests; each test
// gets a database of its own on it.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

// engine opens an empty store of one kind for one test.
type engine struct {
	name string
	open func(t *testing.T) mec.Store
}

// engines are the store engines every test runs on.
func engines() []engine {
	return []engine{
		{"bolt", func(t *testing.T) mec.Store {
			s, err := boltstore.Open(t.TempDir(), boltstore.Options{})
			if err != nil {
				t.Fatalf("open bolt store: %v", err)
			}
			return s
		}},
		{"postgres", func(t *testing.T) mec.Store {
			s, err := pgstore.Open(context.Background(), pg.Database(t), pgstore.Options{})
			if err != nil {
				t.Fatalf("open postgres store: %v", err)
			}
			return s
		}},
	}
}

// onEngines runs fn as a subtest on a fresh environment per engine.
func onEngines(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Helper()
	onEnginesWith(t, Config{}, fn)
}

func onEnginesWith(t *testing.T, cfg Config, fn func(t *testing.T, e *env)) {
	t.Helper()
	for _, eng := range engines() {
		t.Run(eng.name, func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, eng, cfg))
		})
	}
}

// clock is a test clock that moves forward a millisecond each time it is
// read, so that every timestamp is distinct and nothing sleeps.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(time.Millisecond)
	return c.now
}

// events is the services' EventSink in tests: it keeps every event, in
// order, for the notification tests to turn into notifications.
type events struct {
	mu   sync.Mutex
	list []mec.Event
}

func (e *events) Publish(ev mec.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, ev)
}

// take returns the events published so far and forgets them.
func (e *events) take() []mec.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.list
	e.list = nil
	return out
}

// env is one API server over real services on a real store.
type env struct {
	t      *testing.T
	store  mec.Store
	clock  *clock
	events *events
	lc     *lifecycle.Service
	cat    *catalog.Service
	h      *Handler
	srv    *httptest.Server
	spec   *spectest.Spec
	pkg    mec.AppPackage // the onboarded sample package
	need   mec.Resources  // what one instance of it reserves
}

func newEnv(t *testing.T, eng engine, cfg Config) *env {
	t.Helper()
	e := &env{t: t, store: eng.open(t), clock: &clock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}, events: &events{}}
	t.Cleanup(func() { _ = e.store.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	engine := placement.Default(placement.Options{Clock: e.clock.Now})
	e.lc = lifecycle.New(lifecycle.Config{}, e.store, engine, e.events, e.clock.Now, log)
	e.cat = catalog.New(e.store, e.events, e.clock.Now, log, catalog.DefaultOptions())
	e.h = New(cfg, e.lc, e.store, e.clock.Now, log)
	e.srv = httptest.NewServer(e.h)
	t.Cleanup(e.srv.Close)
	e.spec = loadSpec(t)
	e.onboard()
	e.events.take()
	return e
}

// specs caches the parsed ETSI file per test binary: parsing it takes a
// while and the result is read-only.
var specs struct {
	once sync.Once
	spec *spectest.Spec
	err  error
}

func loadSpec(t testing.TB) *spectest.Spec {
	t.Helper()
	specs.once.Do(func() { specs.spec, specs.err = spectest.Open("MEC010-2_AppLcm.yaml") })
	if specs.err != nil {
		t.Fatalf("load ETSI spec: %v", specs.err)
	}
	return specs.spec
}

// onboard uploads examples/edge-echo.zip through the catalogue.
func (e *env) onboard() {
	t := e.t
	t.Helper()
	root := filepath.Join("..", "..", "examples")
	zip, err := os.ReadFile(filepath.Join(root, "edge-echo.zip"))
	if err != nil {
		t.Fatalf("read sample package: %v", err)
	}
	sum, err := os.ReadFile(filepath.Join(root, "edge-echo.zip.sha256"))
	if err != nil {
		t.Fatalf("read sample package checksum: %v", err)
	}
	ctx := context.Background()
	p, err := e.cat.Create(ctx, catalog.CreateRequest{PkgName: "edge-echo", PkgVersion: "1.0",
		Checksum: mec.Checksum{Algorithm: "SHA-256", Hash: strings.Fields(string(sum))[0]}})
	if err != nil {
		t.Fatalf("create package: %v", err)
	}
	if e.pkg, err = e.cat.Upload(ctx, p.ID, zip, "application/zip"); err != nil {
		t.Fatalf("onboard sample package: %v", err)
	}
	if e.need, err = needOf(e.pkg); err != nil {
		t.Fatal(err)
	}
}

// site and host helpers write inventory documents directly, as the
// operator API would.
func (e *env) addSite(s mec.Site) {
	e.t.Helper()
	e.save(mec.KindSite, s.ID, s)
}

// addHost adds a Ready host with room for n instances of the sample app.
func (e *env) addHost(id, site string, n int64, labels map[string]string) {
	e.t.Helper()
	capacity := mec.Resources{MilliCPU: n * e.need.MilliCPU, MemoryMiB: 64 << 10, StorageGB: 10000, GPUs: 0}
	if e.need.MemoryMiB*n > capacity.MemoryMiB {
		capacity.MemoryMiB = e.need.MemoryMiB * n
	}
	if e.need.StorageGB*n > capacity.StorageGB {
		capacity.StorageGB = e.need.StorageGB * n
	}
	e.save(mec.KindHost, id, mec.Host{ID: id, SiteID: site, Name: id, Capacity: capacity, Labels: labels,
		State: mec.HostReady, CreatedAt: e.clock.Now()})
}

func (e *env) save(kind mec.Kind, id string, v any) {
	e.t.Helper()
	err := e.store.Update(context.Background(), func(tx mec.Tx) error {
		_, err := mec.Save(tx, kind, id, v, mec.AnyVersion)
		return err
	})
	if err != nil {
		e.t.Fatalf("save %s %s: %v", kind, id, err)
	}
}

func (e *env) host(id string) mec.Host {
	e.t.Helper()
	var h mec.Host
	err := e.store.View(context.Background(), func(tx mec.Tx) error {
		var err error
		h, _, err = mec.Load[mec.Host](tx, mec.KindHost, id)
		return err
	})
	if err != nil {
		e.t.Fatalf("load host %s: %v", id, err)
	}
	return h
}

// standardSites: three sites in two countries and three zones, one host
// each with room for four instances; h-a1 is labelled gold.
func (e *env) standardSites() {
	e.addSite(mec.Site{ID: "site-a", Name: "Paris", Zone: "north", Country: "FR", Latitude: 48.85, Longitude: 2.35})
	e.addSite(mec.Site{ID: "site-b", Name: "Marseille", Zone: "south", Country: "FR", Latitude: 43.30, Longitude: 5.37})
	e.addSite(mec.Site{ID: "site-c", Name: "Berlin", Zone: "east", Country: "DE", Latitude: 52.52, Longitude: 13.40})
	e.addHost("h-a1", "site-a", 4, map[string]string{"tier": "gold"})
	e.addHost("h-b1", "site-b", 4, map[string]string{"tier": "silver"})
	e.addHost("h-c1", "site-c", 4, nil)
}

// agentApply does what a well-behaved agent on host does: it applies the
// desired state and reports every instance as asked, absent ones unlisted,
// at the desired generation.
func (e *env) agentApply(host string) {
	e.t.Helper()
	ctx := context.Background()
	ds, err := e.lc.DesiredState(ctx, host)
	if err != nil {
		e.t.Fatalf("desired state of %s: %v", host, err)
	}
	rep := lifecycle.HostReport{HostID: host, Generation: ds.Generation}
	for _, in := range ds.Instances {
		if in.State != mec.DesiredAbsent {
			rep.Instances = append(rep.Instances, lifecycle.InstanceStatus{ID: in.ID, State: in.State})
		}
	}
	if err := e.lc.ReportStatus(ctx, rep); err != nil {
		e.t.Fatalf("report status of %s: %v", host, err)
	}
}

// response is one answer of the API, read whole.
type response struct {
	*http.Response
	body []byte
}

// json decodes the body into a generic value.
func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%s %s → %d: body is not a JSON object: %v\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, err, r.body)
	}
	return m
}

func (r response) list(t *testing.T) []map[string]any {
	t.Helper()
	var l []map[string]any
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatalf("%s %s → %d: body is not a JSON array: %v\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, err, r.body)
	}
	return l
}

// do sends a request to the API (path relative to Prefix unless it starts
// with "/") and checks the answer against the ETSI file: a success against
// its operation, an error as a ProblemDetails.
func (e *env) do(method, path string, body any) response {
	e.t.Helper()
	return doOn(e.t, e.srv.Client(), e.spec, e.srv.URL, method, path, body, nil)
}

func (e *env) doHeader(method, path string, body any, header http.Header) response {
	e.t.Helper()
	return doOn(e.t, e.srv.Client(), e.spec, e.srv.URL, method, path, body, header)
}

func doOn(t testing.TB, c *http.Client, spec *spectest.Spec, base, method, path string, body any, header http.Header) response {
	t.Helper()
	if !strings.HasPrefix(path, "/") {
		path = Prefix + "/" + path
	}
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode request: %v", err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	r := response{Response: resp, body: spectest.ReadBody(t, resp)}
	checkSpec(t, spec, r)
	return r
}

// checkSpec validates r against the ETSI file. Errors are checked as
// ProblemDetails whatever their status (the file declares few of the
// statuses the spec text uses: 409, 422, 405, 415); successes against their
// operation; operation occurrences through checkOpOcc.
func checkSpec(t testing.TB, spec *spectest.Spec, r response) {
	t.Helper()
	switch {
	case r.StatusCode >= 400:
		checkProblem(t, spec, r)
	case r.StatusCode == http.StatusNotModified:
	case r.StatusCode == http.StatusAccepted:
		// The file declares an application/json object for the 202s
		// whose text says "the response message content shall be
		// empty": the body must be empty, and the status one the
		// operation declares.
		if len(r.body) != 0 {
			t.Errorf("%s %s → 202 with a body: %s", r.Request.Method, r.Request.URL.Path, r.body)
		}
		h := r.Header.Clone()
		h.Set("Content-Type", "application/json")
		if err := spec.CheckResponse(r.Request, r.StatusCode, h, []byte(`{}`)); err != nil {
			t.Errorf("spectest: %v", err)
		}
	case r.Request.Method == http.MethodGet && strings.Contains(r.Request.URL.Path, "/app_lcm_op_occs"),
		r.Request.Method == http.MethodPost && strings.HasSuffix(r.Request.URL.Path, "/fail") && r.StatusCode == http.StatusOK:
		if strings.HasSuffix(strings.TrimSuffix(r.Request.URL.Path, "/"), "/app_lcm_op_occs") {
			var items []json.RawMessage
			if err := json.Unmarshal(r.body, &items); err != nil {
				t.Errorf("op occ list is not an array: %v\n%s", err, r.body)
			}
			for _, it := range items {
				checkOpOcc(t, spec, it)
			}
			return
		}
		checkOpOcc(t, spec, r.body)
	default:
		spec.ValidateResponse(t, r.Response, r.body)
	}
}

func checkProblem(t testing.TB, spec *spectest.Spec, r response) {
	t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s %s → %d: Content-Type %q, want application/problem+json\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, ct, r.body)
	}
	spec.ValidateSchema(t, "ProblemDetails", r.body)
	var p struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil || p.Status != r.StatusCode || p.Detail == "" {
		t.Errorf("%s %s → %d: problem body must carry the status and a detail: %s", r.Request.Method, r.Request.URL.Path, r.StatusCode, r.body)
	}
}

// checkOpOcc validates an AppLcmOpOcc. The v3 file types operationParams as
// InstantiateAppRequest whatever the operation, and that type requires
// selectedMECHostInfo (which applies to Mm3 only, its NOTE 2) and types
// locationConstraints.area, a GeoJSON object in the spec text, as a string.
// So operationParams is checked apart, against the request type of the
// operation, with those two defects relaxed; the rest as AppLcmOpOcc.
func checkOpOcc(t testing.TB, spec *spectest.Spec, body []byte) {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Errorf("AppLcmOpOcc is not a JSON object: %v\n%s", err, body)
		return
	}
	params, hasParams := m["operationParams"].(map[string]any)
	delete(m, "operationParams")
	rest, _ := json.Marshal(m)
	spec.ValidateSchema(t, "AppLcmOpOcc", rest)
	if !hasParams {
		return
	}
	schema := map[string]string{mec.OpInstantiate: "InstantiateAppRequest", mec.OpOperate: "OperateAppRequest",
		mec.OpTerminate: "TerminateAppRequest"}[m["lcmOperation"].(string)]
	if schema == "InstantiateAppRequest" {
		if _, ok := params["selectedMECHostInfo"]; !ok {
			params["selectedMECHostInfo"] = []any{map[string]any{"hostId": map[string]any{}}}
		}
		if lc, ok := params["locationConstraints"].(map[string]any); ok {
			if area, ok := lc["area"].(map[string]any); ok {
				text, _ := json.Marshal(area)
				lc["area"] = string(text)
			}
		}
	}
	p, _ := json.Marshal(params)
	spec.ValidateSchema(t, schema, p)
}

// wantStatus fails t unless r has status.
func wantStatus(t testing.TB, r response, status int) {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s → %d, want %d\n%s", r.Request.Method, r.Request.URL.Path, r.StatusCode, status, r.body)
	}
}

// wantParams fails t unless the problem in r names exactly the fields
// names, in any order.
func wantParams(t testing.TB, r response, names ...string) {
	t.Helper()
	var p struct {
		InvalidParams []mec.InvalidParam `json:"invalidParams"`
	}
	_ = json.Unmarshal(r.body, &p)
	got := map[string]bool{}
	for _, ip := range p.InvalidParams {
		got[ip.Name] = true
	}
	for _, n := range names {
		if !got[n] {
			t.Errorf("%s %s: invalidParams lack %q\n%s", r.Request.Method, r.Request.URL.Path, n, r.body)
		}
		delete(got, n)
	}
	for n := range got {
		t.Errorf("%s %s: unexpected invalid param %q\n%s", r.Request.Method, r.Request.URL.Path, n, r.body)
	}
}

// createInstance creates an instance of the sample app and returns its ID.
func (e *env) createInstance(name string) string {
	e.t.Helper()
	r := e.do("POST", "app_instances", map[string]any{"appDId": e.pkg.AppDID, "appInstanceName": name})
	wantStatus(e.t, r, http.StatusCreated)
	e.spec.ValidateSchema(e.t, "AppInstanceInfo", r.body)
	return r.json(e.t)["id"].(string)
}

// instantiate asks for instantiation and returns the operation's ID.
func (e *env) instantiate(id string, req any) string {
	e.t.Helper()
	r := e.do("POST", "app_instances/"+id+"/instantiate", req)
	wantStatus(e.t, r, http.StatusAccepted)
	return opIDFrom(e.t, r)
}

// opIDFrom reads the operation occurrence ID from a 202's Location.
func opIDFrom(t testing.TB, r response) string {
	t.Helper()
	loc := r.Header.Get("Location")
	i := strings.LastIndex(loc, "/app_lcm_op_occs/")
	if i < 0 || !strings.HasPrefix(loc, "http") {
		t.Fatalf("202 Location %q is not an absolute operation occurrence URI", loc)
	}
	return loc[i+len("/app_lcm_op_occs/"):]
}

// instance and opOcc read resources through the API.
func (e *env) instance(id string) map[string]any {
	e.t.Helper()
	r := e.do("GET", "app_instances/"+id, nil)
	wantStatus(e.t, r, http.StatusOK)
	return r.json(e.t)
}

func (e *env) opOcc(id string) map[string]any {
	e.t.Helper()
	r := e.do("GET", "app_lcm_op_occs/"+id, nil)
	wantStatus(e.t, r, http.StatusOK)
	return r.json(e.t)
}

// hostOf is where the API says an instance runs.
func hostOf(info map[string]any) string {
	ext, _ := info["x-mecorch"].(map[string]any)
	h, _ := ext["hostId"].(string)
	return h
}

// needOf is what one instance of p reserves by default: its AppD's needs.
func needOf(p mec.AppPackage) (mec.Resources, error) {
	var a appd.AppD
	if err := json.Unmarshal(p.AppD, &a); err != nil {
		return mec.Resources{}, err
	}
	cpu, mem, disk, gpus := a.ComputeNeeds()
	return mec.Resources{MilliCPU: cpu, MemoryMiB: mem, StorageGB: disk, GPUs: gpus}, nil
}

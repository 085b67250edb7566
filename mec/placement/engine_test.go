package placement

import (
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec"
)

var testTime = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func testEngine(t *testing.T) *Engine {
	t.Helper()
	return Default(Options{Clock: func() time.Time { return testTime }})
}

func big() mec.Resources { return res(32000, 131072, 1000, 0) }

// threeSites is a small fleet: site a (zone north, FR) with two hosts, b
// (north, DE) with one, c (south, FR) with one.
func threeSites() ([]mec.Host, []mec.Site) {
	sites := []mec.Site{
		{ID: "a", Zone: "north", Country: "FR", Longitude: 2.35, Latitude: 48.85},
		{ID: "b", Zone: "north", Country: "DE", Longitude: 13.4, Latitude: 52.5},
		{ID: "c", Zone: "south", Country: "FR", Longitude: 5.4, Latitude: 43.3},
	}
	hosts := []mec.Host{
		host("a1", "a", mec.HostReady, big(), res(16000, 65536, 0, 0), map[string]string{"arch": "amd64"}),
		host("a2", "a", mec.HostReady, big(), res(8000, 32768, 0, 0), map[string]string{"arch": "amd64"}),
		host("b1", "b", mec.HostReady, big(), res(24000, 98304, 0, 0), map[string]string{"arch": "arm64"}),
		host("c1", "c", mec.HostUnknown, big(), res(20000, 81920, 0, 0), map[string]string{"arch": "amd64", "gpu": "l4"}),
	}
	return hosts, sites
}

func TestNewRejectsBadPipelines(t *testing.T) {
	named := func(n string) Filter { return renamedFilter{StateFilter{}, n} }
	tests := []struct {
		name    string
		filters []Filter
		scores  []Weighted
		opts    Options
	}{
		{"nil filter", []Filter{nil}, nil, Options{}},
		{"duplicate filter", []Filter{ZoneFilter{}, ZoneFilter{}}, nil, Options{}},
		{"reserved name", []Filter{named(SiteUnknown)}, nil, Options{}},
		{"empty name", []Filter{named("")}, nil, Options{}},
		{"nil score", nil, []Weighted{{}}, Options{}},
		{"duplicate score", nil, []Weighted{{HeadroomScore{}, 1}, {HeadroomScore{}, 2}}, Options{}},
		{"negative weight", nil, []Weighted{{HeadroomScore{}, -1}}, Options{}},
		{"NaN weight", nil, []Weighted{{HeadroomScore{}, math.NaN()}}, Options{}},
		{"infinite weight", nil, []Weighted{{HeadroomScore{}, math.Inf(1)}}, Options{}},
		{"negative TopN", nil, nil, Options{TopN: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.filters, tt.scores, tt.opts); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
	if _, err := New(DefaultFilters(), DefaultScores(), Options{}); err != nil {
		t.Fatalf("default pipeline: %v", err)
	}
}

// renamedFilter is a filter under another name, for New's validation test.
type renamedFilter struct {
	Filter
	name string
}

func (r renamedFilter) Name() string { return r.name }

func TestPlacePicksMostHeadroom(t *testing.T) {
	hosts, sites := threeSites()
	d, err := testEngine(t).Place(&Request{Need: res(1000, 1024, 0, 0)}, NewSnapshot(hosts, sites))
	if err != nil {
		t.Fatal(err)
	}
	if d.HostID != "a2" || d.SiteID != "a" {
		t.Errorf("placed on %s/%s, want a/a2 (the emptiest)", d.SiteID, d.HostID)
	}
	if d.Candidates != 4 || d.Considered != 4 || d.Rejected != nil {
		t.Errorf("candidates %d considered %d rejected %v", d.Candidates, d.Considered, d.Rejected)
	}
	if !d.DecidedAt.Equal(testTime) {
		t.Errorf("DecidedAt %v, want the injected clock's %v", d.DecidedAt, testTime)
	}
	want := []string{"a2", "a1", "c1", "b1"}
	if got := topIDs(d.Top); !slices.Equal(got, want) {
		t.Errorf("Top %v, want %v", got, want)
	}
	// No peers: spread is inactive, so the total is the headroom alone.
	top := d.Top[0]
	if _, ok := top.Scores[NameSpread]; ok {
		t.Errorf("spread reported without peers: %v", top.Scores)
	}
	if h := top.Scores[NameHeadroom]; h != top.Total || d.Score != top.Total {
		t.Errorf("total %v, score %v, headroom %v: want all equal", top.Total, d.Score, h)
	}
}

func TestPlaceRespectsEachConstraint(t *testing.T) {
	hosts, sites := threeSites()
	area := [][][2]float64{{{-5, 42}, {8, 42}, {8, 46}, {-5, 46}, {-5, 42}}} // southern France only
	tests := []struct {
		name string
		c    mec.PlacementConstraints
		want []string // every acceptable host, in rank order
	}{
		{"hostIds", mec.PlacementConstraints{HostIDs: []string{"b1", "c1"}}, []string{"c1", "b1"}},
		{"siteIds", mec.PlacementConstraints{SiteIDs: []string{"b"}}, []string{"b1"}},
		{"zones", mec.PlacementConstraints{Zones: []string{"south"}}, []string{"c1"}},
		{"countryCode", mec.PlacementConstraints{CountryCode: "de"}, []string{"b1"}},
		{"area", mec.PlacementConstraints{Area: area}, []string{"c1"}},
		{"hostLabels", mec.PlacementConstraints{HostLabels: map[string]string{"gpu": ""}}, []string{"c1"}},
		{"combined", mec.PlacementConstraints{Zones: []string{"north"}, CountryCode: "FR", HostLabels: map[string]string{"arch": "amd64"}}, []string{"a2", "a1"}},
	}
	e := testEngine(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := NewSnapshot(hosts, sites)
			req := &Request{Need: res(1000, 1024, 0, 0), Constraints: tt.c}
			d, err := e.Place(req, snap)
			if err != nil {
				t.Fatal(err)
			}
			if got := topIDs(d.Top); !slices.Equal(got, tt.want) {
				t.Errorf("Top %v, want %v", got, tt.want)
			}
			if d.HostID != tt.want[0] || d.Candidates != len(tt.want) {
				t.Errorf("host %s with %d candidates, want %s with %d", d.HostID, d.Candidates, tt.want[0], len(tt.want))
			}
			removed := 0
			for _, n := range d.Rejected {
				removed += n
			}
			if removed+d.Candidates != d.Considered {
				t.Errorf("rejected %v + %d candidates != %d considered", d.Rejected, d.Candidates, d.Considered)
			}
		})
	}
}

// TestPlaceMatchesBruteForce checks, over random requests on a random fleet,
// that the engine's candidates are exactly the hosts that pass every filter
// run naively, and that nobody scores above the chosen host.
func TestPlaceMatchesBruteForce(t *testing.T) {
	hosts, sites := fleet(7, 60, 5)
	snap := NewSnapshot(hosts, sites)
	e := testEngine(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 300; i++ {
		req := randomRequest(rng, sites)
		d, err := e.Place(req, snap)
		var nf *NoFitError
		if err != nil && !errors.As(err, &nf) {
			t.Fatal(err)
		}
		var best float64 = -1
		passing := 0
		for j := range hosts {
			h := &hosts[j]
			s, _ := snap.Site(h.SiteID)
			ok := true
			for _, f := range DefaultFilters() {
				if !f.Keep(req, h, s) && !emptyConstraint(f, req) {
					ok = false
					break
				}
			}
			if !ok {
				continue
			}
			passing++
			best = math.Max(best, naiveTotal(req, h, s))
		}
		if passing != d.Candidates {
			t.Fatalf("request %d: engine found %d candidates, brute force %d", i, d.Candidates, passing)
		}
		if passing == 0 {
			if nf == nil {
				t.Fatalf("request %d: no candidates but no NoFitError", i)
			}
			continue
		}
		if math.Abs(d.Score-best) > 1e-12 {
			t.Fatalf("request %d: chose %s scoring %v, best is %v", i, d.HostID, d.Score, best)
		}
	}
}

// emptyConstraint says whether f is skipped for req (its constraint is not
// set), mirroring the preparers without calling them.
func emptyConstraint(f Filter, req *Request) bool {
	c := req.Constraints
	switch f.Name() {
	case NameHostIDs:
		return len(c.HostIDs) == 0
	case NameSiteIDs:
		return len(c.SiteIDs) == 0
	case NameZones:
		return len(c.Zones) == 0
	case NameCountryCode:
		return c.CountryCode == ""
	case NameArea:
		return len(c.Area) == 0
	}
	return false
}

func naiveTotal(req *Request, h *mec.Host, s *mec.Site) float64 {
	head := HeadroomScore{}.Score(req, h, s)
	if (SpreadScore{}).PrepareScore(req, nil) == nil {
		return head
	}
	return (SpreadWeight*SpreadScore{}.Score(req, h, s) + HeadroomWeight*head) / (SpreadWeight + HeadroomWeight)
}

func randomRequest(rng *rand.Rand, sites []mec.Site) *Request {
	req := &Request{Need: res(int64(rng.IntN(16))*1000, int64(rng.IntN(64))*1024, int64(rng.IntN(200)), int64(rng.IntN(2)))}
	c := &req.Constraints
	if rng.IntN(4) == 0 {
		c.Zones = []string{sites[rng.IntN(len(sites))].Zone, sites[rng.IntN(len(sites))].Zone}
	}
	if rng.IntN(4) == 0 {
		c.CountryCode = sites[rng.IntN(len(sites))].Country
	}
	if rng.IntN(4) == 0 {
		c.SiteIDs = []string{sites[rng.IntN(len(sites))].ID, sites[rng.IntN(len(sites))].ID}
	}
	if rng.IntN(4) == 0 {
		lon, lat := -5+20*rng.Float64(), 40+14*rng.Float64()
		c.Area = [][][2]float64{{{lon, lat}, {lon + 6, lat}, {lon + 6, lat + 5}, {lon, lat + 5}, {lon, lat}}}
	}
	if rng.IntN(3) == 0 {
		c.HostLabels = map[string]string{"arch": "amd64"}
	}
	if rng.IntN(2) == 0 {
		req.Peers = map[string]int{}
		for k := 0; k < 10; k++ {
			req.Peers[sites[rng.IntN(len(sites))].ID]++
		}
	}
	return req
}

func TestNoFitErrorCounts(t *testing.T) {
	cap16 := res(16000, 65536, 100, 0)
	sites := []mec.Site{{ID: "n", Zone: "north"}, {ID: "s", Zone: "south"}}
	hosts := []mec.Host{
		// Three lack memory.
		host("m1", "n", mec.HostReady, cap16, res(0, 65536, 0, 0), nil),
		host("m2", "n", mec.HostReady, cap16, res(0, 60000, 0, 0), nil),
		host("m3", "n", mec.HostUnknown, cap16, res(0, 65000, 0, 0), nil),
		// Two NotReady, one of them also short of memory: counted once,
		// under the first filter that removes it.
		host("r1", "n", mec.HostNotReady, cap16, res(0, 0, 0, 0), nil),
		host("r2", "n", mec.HostNotReady, cap16, res(0, 65536, 0, 0), nil),
		// One draining.
		host("d1", "n", mec.HostDraining, cap16, res(0, 0, 0, 0), nil),
		// Two in the wrong zone, though otherwise perfect.
		host("z1", "s", mec.HostReady, cap16, res(0, 0, 0, 0), nil),
		host("z2", "s", mec.HostReady, cap16, res(0, 0, 0, 0), nil),
		// One on a site the inventory does not know.
		host("u1", "gone", mec.HostReady, cap16, res(0, 0, 0, 0), nil),
	}
	req := &Request{Need: res(1000, 8192, 0, 0), Constraints: mec.PlacementConstraints{Zones: []string{"north"}}}
	d, err := testEngine(t).Place(req, NewSnapshot(hosts, sites))
	var nf *NoFitError
	if !errors.As(err, &nf) {
		t.Fatalf("err = %v, want *NoFitError", err)
	}
	want := map[string]int{SiteUnknown: 1, NameZones: 2, NameState: 3, NameMemory: 3}
	if got := nf.Counts(); !reflect.DeepEqual(got, want) {
		t.Errorf("NoFitError counts %v, want %v", got, want)
	}
	if !reflect.DeepEqual(d.Rejected, want) || d.Candidates != 0 || d.Considered != len(hosts) {
		t.Errorf("decision rejected %v candidates %d considered %d", d.Rejected, d.Candidates, d.Considered)
	}
	if d.HostID != "" || d.Top != nil {
		t.Errorf("decision names a host though none fits: %+v", d)
	}
	msg := err.Error()
	for _, part := range []string{"9 considered", "1 belong to a site missing", "2 are outside the requested zones", "3 are not Ready or Unknown", "3 lack free memory"} {
		if !strings.Contains(msg, part) {
			t.Errorf("error %q does not say %q", msg, part)
		}
	}
	// Pipeline order, so the message reads from "what you asked for" to
	// "what is full".
	var order []string
	for _, r := range nf.Rejections {
		order = append(order, r.Filter)
	}
	if wantOrder := []string{SiteUnknown, NameZones, NameState, NameMemory}; !slices.Equal(order, wantOrder) {
		t.Errorf("rejections in order %v, want %v", order, wantOrder)
	}
}

func TestNoFitOnEmptyInventory(t *testing.T) {
	for _, snap := range []*Snapshot{nil, NewSnapshot(nil, nil)} {
		_, err := testEngine(t).Place(&Request{}, snap)
		var nf *NoFitError
		if !errors.As(err, &nf) || nf.Considered != 0 || len(nf.Rejections) != 0 {
			t.Errorf("err = %v, want an empty NoFitError", err)
		}
	}
	if _, err := testEngine(t).Place(nil, nil); err == nil {
		t.Error("nil request accepted")
	}
}

// TestSpreadAcrossSites places replicas one after another the way the
// orchestrator does (reserve, count the peer) and expects one per site,
// although site a has by far the emptiest hosts.
func TestSpreadAcrossSites(t *testing.T) {
	sites := []mec.Site{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	hosts := []mec.Host{
		host("a1", "a", mec.HostReady, big(), res(0, 0, 0, 0), nil),
		host("a2", "a", mec.HostReady, big(), res(0, 0, 0, 0), nil),
		host("b1", "b", mec.HostReady, big(), res(28000, 120000, 0, 0), nil),
		host("c1", "c", mec.HostReady, big(), res(30000, 125000, 0, 0), nil),
	}
	snap := NewSnapshot(hosts, sites)
	e := testEngine(t)
	need := res(1000, 2048, 0, 0)
	req := &Request{Need: need, Constraints: mec.PlacementConstraints{SpreadKey: "app-1"}, Peers: map[string]int{}}
	var got []string
	for i := 0; i < 4; i++ {
		d, err := e.Place(req, snap)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, d.SiteID)
		if !snap.Reserve(d.HostID, need) {
			t.Fatalf("reserve on %s", d.HostID)
		}
		req.Peers[d.SiteID]++
		if i > 0 && d.Top[0].Scores[NameSpread] == 0 {
			t.Errorf("replica %d: no spread score in %v", i, d.Top[0].Scores)
		}
	}
	// Three sites for three replicas; the fourth goes back to the site
	// with the most room.
	if want := []string{"a", "b", "c", "a"}; !slices.Equal(got, want) {
		t.Errorf("replicas on sites %v, want %v", got, want)
	}
}

// TestDeterministic: the same request on the same inventory picks the same
// host whatever order the hosts come in, identical hosts included.
func TestDeterministic(t *testing.T) {
	hosts, sites := fleet(3, 50, 4)
	// Make a batch of identical hosts, bigger than any other so that they
	// lead, and ties must be broken.
	for i := 0; i < 40; i++ {
		hosts[i].Capacity, hosts[i].Allocated, hosts[i].State = res(1e6, 4e6, 1e4, 0), mec.Resources{}, mec.HostReady
		hosts[i].Labels = map[string]string{"arch": "amd64"}
	}
	e := testEngine(t)
	req := &Request{Need: res(500, 512, 0, 0), Constraints: mec.PlacementConstraints{SpreadKey: "k"}}
	first, err := e.Place(req, NewSnapshot(slices.Clone(hosts), sites))
	if err != nil {
		t.Fatal(err)
	}
	if first.Top[0].Total != first.Top[1].Total {
		t.Fatalf("test needs a tie at the top: %v", first.Top)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 20; i++ {
		shuffled := slices.Clone(hosts)
		rng.Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
		d, err := e.Place(req, NewSnapshot(shuffled, sites))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(d, first) {
			t.Fatalf("shuffle %d: decision %v, first was %v", i, topIDs(d.Top), topIDs(first.Top))
		}
	}
}

func TestRank(t *testing.T) {
	hosts, sites := fleet(11, 100, 10)
	snap := NewSnapshot(hosts, sites)
	e := testEngine(t)
	req := &Request{Need: res(2000, 4096, 10, 0), Peers: map[string]int{"site-0001": 2, "site-0002": 1}}
	d, err := e.Place(req, snap)
	if err != nil {
		t.Fatal(err)
	}
	ranked := e.Rank(req, snap, 50)
	if len(ranked) != 50 {
		t.Fatalf("Rank returned %d, want 50", len(ranked))
	}
	if ranked[0].HostID != d.HostID || !reflect.DeepEqual(ranked[:5], d.Top) {
		t.Errorf("Rank's head %v differs from Place's Top %v", topIDs(ranked[:5]), topIDs(d.Top))
	}
	for i := 1; i < len(ranked); i++ {
		if ranked[i].Total > ranked[i-1].Total {
			t.Errorf("rank %d (%v) above rank %d (%v)", i, ranked[i].Total, i-1, ranked[i-1].Total)
		}
	}
	all := e.Rank(req, snap, len(hosts)*2)
	if len(all) != d.Candidates {
		t.Errorf("Rank(all) returned %d, want every candidate (%d)", len(all), d.Candidates)
	}
	if !reflect.DeepEqual(all[:50], ranked) {
		t.Error("a longer ranking does not start with the shorter one")
	}
	if e.Rank(req, snap, 0) != nil || e.Rank(nil, snap, 3) != nil {
		t.Error("Rank with n = 0 or no request returned something")
	}
}

func TestTopN(t *testing.T) {
	hosts, sites := threeSites()
	e, err := New(DefaultFilters(), DefaultScores(), Options{TopN: 2})
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Place(&Request{}, NewSnapshot(hosts, sites))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Top) != 2 || d.Candidates != 4 {
		t.Errorf("Top has %d, candidates %d; want 2 and 4", len(d.Top), d.Candidates)
	}
}

// countingSite is the shape of a later latency stage: a site filter and a
// site score, plugged in without touching the engine.
type countingSite struct {
	calls map[string]int
	keep  func(*mec.Site) bool
	value float64
}

func (c *countingSite) Name() string { return "test" }
func (c *countingSite) Keep(req *Request, _ *mec.Host, s *mec.Site) bool {
	return c.KeepSite(req, s)
}
func (c *countingSite) KeepSite(_ *Request, s *mec.Site) bool {
	c.calls[s.ID]++
	return c.keep(s)
}
func (c *countingSite) Score(req *Request, _ *mec.Host, s *mec.Site) float64 {
	return c.ScoreSite(req, s)
}
func (c *countingSite) ScoreSite(_ *Request, s *mec.Site) float64 {
	c.calls["score:"+s.ID]++
	return c.value
}

func TestExtensionStagesRunOncePerSite(t *testing.T) {
	hosts, sites := threeSites()
	f := &countingSite{calls: map[string]int{}, keep: func(s *mec.Site) bool { return s.ID != "b" }}
	sc := &countingSite{calls: map[string]int{}, value: math.NaN()} // a faulty score
	e, err := New(append(DefaultFilters(), f), append(DefaultScores(), Weighted{sc, 1}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Place(&Request{}, NewSnapshot(hosts, sites))
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"a": 1, "b": 1, "c": 1}; !reflect.DeepEqual(f.calls, want) {
		t.Errorf("site filter calls %v, want once per site %v", f.calls, want)
	}
	// b was filtered out, so it is never scored.
	if want := map[string]int{"score:a": 1, "score:c": 1}; !reflect.DeepEqual(sc.calls, want) {
		t.Errorf("site score calls %v, want %v", sc.calls, want)
	}
	if d.Rejected["test"] != 1 || d.Candidates != 3 {
		t.Errorf("rejected %v candidates %d", d.Rejected, d.Candidates)
	}
	for _, c := range d.Top {
		if math.IsNaN(c.Total) || c.Scores["test"] != 0 {
			t.Errorf("NaN score leaked: %+v", c)
		}
	}
}

func TestSnapshot(t *testing.T) {
	hosts, sites := threeSites()
	snap := NewSnapshot(hosts, sites)
	h, s, ok := snap.Host("b1")
	if !ok || h.ID != "b1" || s.ID != "b" {
		t.Fatalf("Host(b1) = %v %v %v", h, s, ok)
	}
	if _, _, ok := snap.Host("zz"); ok {
		t.Error("found a host that does not exist")
	}
	if s, ok := snap.Site("c"); !ok || s.Zone != "south" {
		t.Errorf("Site(c) = %v %v", s, ok)
	}
	before := h.Allocated
	if !snap.Reserve("b1", res(1000, 1024, 1, 0)) || h.Allocated != before.Add(res(1000, 1024, 1, 0)) {
		t.Errorf("Reserve did not add: %v", h.Allocated)
	}
	if snap.Reserve("zz", res(1, 1, 1, 1)) {
		t.Error("reserved on a host that does not exist")
	}
	if snap.Len() != 4 || len(snap.Sites()) != 3 || len(snap.Hosts()) != 4 {
		t.Error("wrong sizes")
	}
}

// TestConcurrentPlace shares one engine between goroutines; run with -race.
func TestConcurrentPlace(t *testing.T) {
	hosts, sites := fleet(5, 40, 5)
	snap := NewSnapshot(hosts, sites)
	e := testEngine(t)
	want, err := e.Place(&Request{Need: res(1000, 1024, 0, 0)}, snap)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				d, err := e.Place(&Request{Need: res(1000, 1024, 0, 0)}, snap)
				if err != nil || d.HostID != want.HostID {
					t.Errorf("concurrent decision %s (%v), want %s", d.HostID, err, want.HostID)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func topIDs(top []mec.ScoredHost) []string {
	ids := make([]string, len(top))
	for i, c := range top {
		ids[i] = c.HostID
	}
	return ids
}

package placement

import (
	"math"

	"github.com/mecorch/mecorch/mec"
)

// AreaFilter keeps the hosts of sites inside Constraints.Area, a GeoJSON
// Polygon (RFC 7946 §3.1.6): the first ring is the outer boundary, the
// others are holes; positions are [longitude, latitude]. Coordinates are
// taken as planar, which is what GeoJSON prescribes for polygons that do not
// cross the antimeridian; one that does must be split by the client (RFC
// 7946 §3.1.9). A site exactly on a boundary may fall either way.
type AreaFilter struct{}

func (AreaFilter) Name() string    { return NameArea }
func (AreaFilter) Explain() string { return "are outside the requested area" }

func (f AreaFilter) Keep(req *Request, _ *mec.Host, s *mec.Site) bool { return f.KeepSite(req, s) }

func (AreaFilter) KeepSite(req *Request, s *mec.Site) bool {
	return InPolygon(req.Constraints.Area, s.Longitude, s.Latitude)
}

// PrepareFilter computes the outer ring's bounding box once, so that most
// sites are turned away by four comparisons.
func (AreaFilter) PrepareFilter(req *Request, _ *Snapshot) Filter {
	rings := req.Constraints.Area
	if len(rings) == 0 {
		return nil
	}
	p := boxedPolygon{rings: rings, minLon: math.Inf(1), minLat: math.Inf(1), maxLon: math.Inf(-1), maxLat: math.Inf(-1)}
	for _, pt := range rings[0] {
		p.minLon, p.maxLon = math.Min(p.minLon, pt[0]), math.Max(p.maxLon, pt[0])
		p.minLat, p.maxLat = math.Min(p.minLat, pt[1]), math.Max(p.maxLat, pt[1])
	}
	return p
}

type boxedPolygon struct {
	rings                          [][][2]float64
	minLon, minLat, maxLon, maxLat float64
}

func (boxedPolygon) Name() string { return NameArea }

func (p boxedPolygon) Keep(req *Request, _ *mec.Host, s *mec.Site) bool { return p.KeepSite(req, s) }

func (p boxedPolygon) KeepSite(_ *Request, s *mec.Site) bool {
	if s.Longitude < p.minLon || s.Longitude > p.maxLon || s.Latitude < p.minLat || s.Latitude > p.maxLat {
		return false
	}
	return InPolygon(p.rings, s.Longitude, s.Latitude)
}

// InPolygon reports whether (lon, lat) lies inside the GeoJSON polygon
// rings: inside the outer ring and outside every hole. An empty polygon,
// or an outer ring of fewer than three positions, contains nothing.
func InPolygon(rings [][][2]float64, lon, lat float64) bool {
	if len(rings) == 0 || !inRing(rings[0], lon, lat) {
		return false
	}
	for _, hole := range rings[1:] {
		if inRing(hole, lon, lat) {
			return false
		}
	}
	return true
}

// inRing is the even-odd rule: a ray from the point towards +longitude
// crosses the ring's edges an odd number of times when the point is
// inside. Whether the ring repeats its first position at the end (GeoJSON
// requires it) does not matter: the closing edge is then of length zero.
func inRing(ring [][2]float64, x, y float64) bool {
	if len(ring) < 3 {
		return false
	}
	in := false
	for i, j := 0, len(ring)-1; i < len(ring); j, i = i, i+1 {
		xi, yi := ring[i][0], ring[i][1]
		xj, yj := ring[j][0], ring[j][1]
		// The half-open test (> on one end, <= on the other) counts a
		// vertex lying on the ray once, not twice, and skips horizontal
		// edges, so yj-yi is never zero below.
		if (yi > y) != (yj > y) && x < xi+(y-yi)*(xj-xi)/(yj-yi) {
			in = !in
		}
	}
	return in
}

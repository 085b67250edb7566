package placement

import (
	"testing"

	"github.com/mecorch/mecorch/mec"
)

// A square around Paris with a hole around its centre, in GeoJSON order
// ([lon, lat]) and closed as RFC 7946 requires.
var (
	parisOuter = [][2]float64{{2.0, 48.6}, {2.7, 48.6}, {2.7, 49.1}, {2.0, 49.1}, {2.0, 48.6}}
	parisHole  = [][2]float64{{2.3, 48.8}, {2.4, 48.8}, {2.4, 48.9}, {2.3, 48.9}, {2.3, 48.8}}
	// A concave "U": the notch between its arms is outside.
	uShape = [][2]float64{{0, 0}, {3, 0}, {3, 3}, {2, 3}, {2, 1}, {1, 1}, {1, 3}, {0, 3}, {0, 0}}
)

func TestInPolygon(t *testing.T) {
	tests := []struct {
		name     string
		rings    [][][2]float64
		lon, lat float64
		want     bool
	}{
		{"inside", [][][2]float64{parisOuter}, 2.2, 48.7, true},
		{"outside east", [][][2]float64{parisOuter}, 3.0, 48.7, false},
		{"outside north", [][][2]float64{parisOuter}, 2.2, 49.5, false},
		{"lat and lon swapped is outside", [][][2]float64{parisOuter}, 48.7, 2.2, false},
		{"in the hole", [][][2]float64{parisOuter, parisHole}, 2.35, 48.85, false},
		{"beside the hole", [][][2]float64{parisOuter, parisHole}, 2.5, 48.85, true},
		{"in the U's arm", [][][2]float64{uShape}, 0.5, 2, true},
		{"in the U's notch", [][][2]float64{uShape}, 1.5, 2, false},
		{"in the U's base", [][][2]float64{uShape}, 1.5, 0.5, true},
		{"ray through vertices, outside", [][][2]float64{uShape}, -1, 1, false},
		{"ray through vertices, inside", [][][2]float64{uShape}, 0.5, 1, true},
		{"ring not closed", [][][2]float64{parisOuter[:4]}, 2.2, 48.7, true},
		{"empty polygon", nil, 2.2, 48.7, false},
		{"degenerate ring", [][][2]float64{{{2, 48}, {3, 49}}}, 2.5, 48.5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := InPolygon(tt.rings, tt.lon, tt.lat); got != tt.want {
				t.Errorf("InPolygon(%v, %v) = %v, want %v", tt.lon, tt.lat, got, tt.want)
			}
		})
	}
}

func TestAreaFilter(t *testing.T) {
	tests := []struct {
		name     string
		area     [][][2]float64
		lon, lat float64
		want     bool
	}{
		{"no constraint", nil, 100, 10, true},
		{"inside", [][][2]float64{parisOuter, parisHole}, 2.2, 48.7, true},
		{"in the hole", [][][2]float64{parisOuter, parisHole}, 2.35, 48.85, false},
		{"outside the box", [][][2]float64{parisOuter}, 13.4, 52.5, false},
		{"in the box, outside the U", [][][2]float64{uShape}, 1.5, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &Request{Constraints: mec.PlacementConstraints{Area: tt.area}}
			s := mec.Site{ID: "s", Longitude: tt.lon, Latitude: tt.lat}
			if got := verdict(t, AreaFilter{}, req, &mec.Host{ID: "h", SiteID: "s"}, &s); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

package placement

import (
	"math"
	"testing"

	"github.com/mecorch/mecorch/mec"
)

func TestSpreadScore(t *testing.T) {
	peers := map[string]int{"a": 0, "b": 1, "c": 3, "neg": -2}
	tests := []struct {
		site string
		want float64
	}{
		{"a", 1},
		{"b", 0.5},
		{"c", 0.25},
		{"absent", 1},
		{"neg", 1},
	}
	req := &Request{Peers: peers}
	for _, tt := range tests {
		t.Run(tt.site, func(t *testing.T) {
			s := mec.Site{ID: tt.site}
			if got := (SpreadScore{}).ScoreSite(req, &s); got != tt.want {
				t.Errorf("ScoreSite = %v, want %v", got, tt.want)
			}
			if got := (SpreadScore{}).Score(req, &mec.Host{SiteID: tt.site}, &s); got != tt.want {
				t.Errorf("Score = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSpreadScorePrepare(t *testing.T) {
	tests := []struct {
		name   string
		peers  map[string]int
		active bool
	}{
		{"no peers", nil, false},
		{"only zero counts", map[string]int{"a": 0}, false},
		{"a peer", map[string]int{"a": 0, "b": 1}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := (SpreadScore{}).PrepareScore(&Request{Peers: tt.peers}, nil) != nil
			if got != tt.active {
				t.Errorf("active = %v, want %v", got, tt.active)
			}
		})
	}
}

func TestHeadroomScore(t *testing.T) {
	tests := []struct {
		name      string
		capacity  mec.Resources
		allocated mec.Resources
		need      mec.Resources
		want      float64
	}{
		{"empty host, no need", res(8000, 16384, 0, 0), res(0, 0, 0, 0), res(0, 0, 0, 0), 1},
		{"half used after placing", res(8000, 16384, 0, 0), res(2000, 4096, 0, 0), res(2000, 4096, 0, 0), 0.5},
		{"cpu and memory averaged", res(8000, 16384, 0, 0), res(0, 0, 0, 0), res(8000, 0, 0, 0), 0.5},
		{"full after placing", res(8000, 16384, 0, 0), res(6000, 12288, 0, 0), res(2000, 4096, 0, 0), 0},
		{"storage and gpus ignored", res(8000, 16384, 100, 4), res(0, 0, 100, 4), res(0, 0, 0, 0), 1},
		{"zero cpu capacity ignored", res(0, 16384, 0, 0), res(0, 4096, 0, 0), res(0, 4096, 0, 0), 0.5},
		{"no capacity at all", res(0, 0, 0, 0), res(0, 0, 0, 0), res(0, 0, 0, 0), 0},
		{"overcommitted clamps at 0", res(8000, 16384, 0, 0), res(9000, 0, 0, 0), res(0, 0, 0, 0), 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mec.Host{Capacity: tt.capacity, Allocated: tt.allocated}
			got := (HeadroomScore{}).Score(&Request{Need: tt.need}, &h, &mec.Site{})
			if math.Abs(got-tt.want) > 1e-12 {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestClamp01(t *testing.T) {
	for in, want := range map[float64]float64{-1: 0, 0: 0, 0.25: 0.25, 1: 1, 7: 1, math.Inf(1): 1, math.Inf(-1): 0} {
		if got := clamp01(in); got != want {
			t.Errorf("clamp01(%v) = %v, want %v", in, got, want)
		}
	}
	if got := clamp01(math.NaN()); got != 0 {
		t.Errorf("clamp01(NaN) = %v, want 0", got)
	}
}

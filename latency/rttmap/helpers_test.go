package rttmap

import (
	"math"

	"github.com/mecorch/mecorch/latency/vivaldi"
)

func sqrt(f float64) float64 { return math.Sqrt(f) }

func vivaldiSeed(seed uint64) vivaldi.Config { return vivaldi.Config{Seed: seed} }

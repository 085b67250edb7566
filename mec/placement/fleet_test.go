package placement

import (
	"fmt"
	"math/rand/v2"

	"github.com/mecorch/mecorch/mec"
)

// fleet makes a reproducible edge inventory: sites spread over western
// Europe in zones and three countries, servers of a few common sizes, partly
// allocated, with the labels operators put on them, and a realistic share of
// hosts that are not schedulable.
func fleet(seed uint64, nSites, hostsPerSite int) ([]mec.Host, []mec.Site) {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	countries := []string{"FR", "DE", "ES"}
	sites := make([]mec.Site, nSites)
	for i := range sites {
		sites[i] = mec.Site{
			ID:        fmt.Sprintf("site-%04d", i),
			Name:      fmt.Sprintf("Site %d", i),
			Zone:      fmt.Sprintf("zone-%02d", i%20),
			Country:   countries[i%len(countries)],
			Longitude: -5 + 20*rng.Float64(),
			Latitude:  40 + 14*rng.Float64(),
		}
	}
	sizes := []mec.Resources{
		{MilliCPU: 16000, MemoryMiB: 65536, StorageGB: 480, GPUs: 0},
		{MilliCPU: 32000, MemoryMiB: 131072, StorageGB: 960, GPUs: 0},
		{MilliCPU: 64000, MemoryMiB: 262144, StorageGB: 1920, GPUs: 0},
		{MilliCPU: 48000, MemoryMiB: 196608, StorageGB: 960, GPUs: 2},
	}
	hosts := make([]mec.Host, 0, nSites*hostsPerSite)
	for si := range sites {
		for j := 0; j < hostsPerSite; j++ {
			size := sizes[rng.IntN(len(sizes))]
			used := rng.Float64() * 0.95
			alloc := mec.Resources{
				MilliCPU:  int64(float64(size.MilliCPU)*used) / 250 * 250,
				MemoryMiB: int64(float64(size.MemoryMiB)*(used+0.05*rng.Float64())) / 512 * 512,
				StorageGB: int64(float64(size.StorageGB) * used * rng.Float64()),
				GPUs:      min(size.GPUs, int64(rng.IntN(3))),
			}
			labels := map[string]string{"arch": "amd64", "tier": "far-edge"}
			if rng.IntN(5) == 0 {
				labels["arch"] = "arm64"
			}
			if si%10 == 0 {
				labels["tier"] = "near-edge"
			}
			if size.GPUs > 0 {
				labels["gpu"] = "l4"
			}
			state := mec.HostReady
			switch r := rng.IntN(100); {
			case r < 3:
				state = mec.HostNotReady
			case r < 5:
				state = mec.HostDraining
			case r < 10:
				state = mec.HostUnknown
			}
			hosts = append(hosts, mec.Host{
				ID:        fmt.Sprintf("host-%04d-%02d", si, j),
				SiteID:    sites[si].ID,
				Capacity:  size,
				Allocated: alloc,
				Labels:    labels,
				State:     state,
			})
		}
	}
	return hosts, sites
}

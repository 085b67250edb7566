package appd

import (
	"math"
	"strconv"
	"strings"
)

// ComputeNeeds sums what one instance of the app asks of a host:
//
//   - milliCPU: numVirtualCpu × 1000 for a VM; for containers the sum of
//     requestedCpuResources (milli-CPU), or of cpuResourceLimit where a
//     container gives a limit but no request (Kubernetes does the same).
//   - memoryMiB: virtualMemSize for a VM, the containers' memory requests
//     (or limits) otherwise; the spec's "MB" is taken as MiB, as NFV
//     flavours do.
//   - storageGB: block and file sizeOfStorage of virtualStorageDescriptor,
//     the VM's virtualDisk sizes, and the containers' ephemeral storage
//     requests (or limits). Object storage is a maximum, not a need, and is
//     left out.
//   - gpus: see gpuCount.
//
// Fractions are rounded up and sums saturate instead of overflowing, so a
// hostile AppD cannot wrap a huge request into a small one.
func (a *AppD) ComputeNeeds() (milliCPU, memoryMiB, storageGB, gpus int64) {
	var cpu, mem, disk float64
	var gpu int64
	if v := a.VirtualComputeDescriptor; v != nil {
		if v.VirtualCPU != nil {
			cpu += float64(v.VirtualCPU.NumVirtualCPU) * 1000
		}
		if v.VirtualMemory != nil {
			mem += v.VirtualMemory.VirtualMemSize
		}
		for _, d := range v.VirtualDisk {
			disk += d.SizeOfStorage
		}
		gpu = satAdd(gpu, capabilityGPUs(v.RequestAdditionalCapabilities))
	}
	for _, o := range a.OsContainerDescriptor {
		cpu += requestOrLimit(float64(o.RequestedCPUResources), float64(o.CPUResourceLimit))
		mem += requestOrLimit(o.RequestedMemoryResources, o.MemoryResourceLimit)
		disk += requestOrLimit(o.RequestedEphemeralStorageResources, o.EphemeralStorageResourceLimit)
		for _, kv := range o.ExtendedResourceRequests {
			gpu = satAdd(gpu, extendedGPUs(kv))
		}
	}
	gpu = satAdd(gpu, capabilityGPUs(a.RequestAdditionalCapabilities))
	for _, s := range a.VirtualStorageDescriptor {
		if s.BlockStorageData != nil {
			disk += s.BlockStorageData.SizeOfStorage
		}
		if s.FileStorageData != nil {
			disk += s.FileStorageData.SizeOfStorage
		}
	}
	return ceilInt(cpu), ceilInt(mem), ceilInt(disk), gpu
}

func requestOrLimit(request, limit float64) float64 {
	if request > 0 {
		return request
	}
	return math.Max(limit, 0)
}

func ceilInt(f float64) int64 {
	switch {
	case math.IsNaN(f) || f <= 0:
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	}
	return int64(math.Ceil(f))
}

func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// capabilityGPUs counts mandatory requested additional capabilities whose
// name mentions "gpu" (e.g. "GPU", "nvidia-gpu"). Each counts as one GPU
// unless its targetPerformanceParameters give a count under "count",
// "number", "gpus", "numGpus" or "gpuCount". Optional capabilities are
// preferences, not needs, and count as none.
func capabilityGPUs(caps []RequestedAdditionalCapabilityData) int64 {
	var n int64
	for _, c := range caps {
		if c.SupportMandatory == nil || !*c.SupportMandatory ||
			!strings.Contains(strings.ToLower(c.RequestedAdditionalCapabilityName), "gpu") {
			continue
		}
		count := int64(1)
		for _, kv := range c.TargetPerformanceParameters {
			for k, v := range kv {
				switch strings.ToLower(k) {
				case "count", "number", "gpus", "numgpus", "gpucount":
					if x, ok := wholeNumber(v); ok {
						count = x
					}
				}
			}
		}
		n = satAdd(n, count)
	}
	return n
}

// extendedGPUs reads Kubernetes-style extended resources such as
// {"nvidia.com/gpu": 2}: any key whose last path element is "gpu".
func extendedGPUs(kv KeyValuePairs) int64 {
	var n int64
	for k, v := range kv {
		name := strings.ToLower(k)
		if i := strings.LastIndexByte(name, '/'); i >= 0 {
			name = name[i+1:]
		}
		if name != "gpu" {
			continue
		}
		if x, ok := wholeNumber(v); ok {
			n = satAdd(n, x)
		}
	}
	return n
}

// wholeNumber reads a non-negative integer given as a number or a string.
func wholeNumber(v any) (int64, bool) {
	switch x := v.(type) {
	case int64:
		return x, x >= 0
	case int:
		return int64(x), x >= 0
	case float64:
		if x >= 0 && x == math.Trunc(x) && x < math.MaxInt64 {
			return int64(x), true
		}
	case string:
		if i, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64); err == nil && i >= 0 {
			return i, true
		}
	}
	return 0, false
}

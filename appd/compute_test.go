package appd

import (
	"math"
	"testing"
)

func TestComputeNeeds(t *testing.T) {
	type needs struct{ cpu, mem, disk, gpu int64 }
	tests := []struct {
		name string
		edit func(a *AppD)
		want needs
	}{
		{"sample VM", func(a *AppD) {}, needs{1000, 512, 0, 0}},
		{"VM with disks, storage and a GPU", func(a *AppD) {
			v := a.VirtualComputeDescriptor
			v.VirtualCPU.NumVirtualCPU = 4
			v.VirtualMemory.VirtualMemSize = 1536.5
			v.VirtualDisk = []BlockStorageData{{SizeOfStorage: 10}}
			v.RequestAdditionalCapabilities = []RequestedAdditionalCapabilityData{
				{RequestedAdditionalCapabilityName: "nvidia-GPU", SupportMandatory: ptr(true), TargetPerformanceParameters: []KeyValuePairs{{"count": int64(2)}}},
				{RequestedAdditionalCapabilityName: "GPU", SupportMandatory: ptr(false)}, // a preference, not a need
				{RequestedAdditionalCapabilityName: "SR-IOV", SupportMandatory: ptr(true)},
			}
			a.VirtualStorageDescriptor = []VirtualStorageDescriptor{
				{TypeOfStorage: "BLOCK", BlockStorageData: &BlockStorageData{SizeOfStorage: 2.5}},
				{TypeOfStorage: "FILE", FileStorageData: &FileStorageData{SizeOfStorage: 1}},
				{TypeOfStorage: "OBJECT", ObjectStorageData: &ObjectStorageData{MaxSizeOfStorage: 100}},
			}
		}, needs{4000, 1537, 14, 2}},
		{"containers: requests, limits as requests, extended GPUs", func(a *AppD) {
			img := a.SwImageDescriptor[0]
			a.VirtualComputeDescriptor = nil
			a.OsContainerDescriptor = []OsContainerDescriptor{
				{RequestedCPUResources: 250, CPUResourceLimit: 500, RequestedMemoryResources: 128, RequestedEphemeralStorageResources: 0.5, SwImageDesc: &img,
					ExtendedResourceRequests: []KeyValuePairs{{"nvidia.com/gpu": int64(1), "example.com/fpga": int64(3)}}},
				{CPUResourceLimit: 100, MemoryResourceLimit: 64.2, SwImageDesc: &img,
					ExtendedResourceRequests: []KeyValuePairs{{"amd.com/gpu": "2"}}},
			}
			a.RequestAdditionalCapabilities = []RequestedAdditionalCapabilityData{{RequestedAdditionalCapabilityName: "gpu", SupportMandatory: ptr(true), TargetPerformanceParameters: []KeyValuePairs{{"numGpus": 1.0}}}}
		}, needs{350, 193, 1, 4}},
		{"no compute descriptor", func(a *AppD) { a.VirtualComputeDescriptor = nil }, needs{}},
		{"huge values saturate", func(a *AppD) {
			a.VirtualComputeDescriptor.VirtualCPU.NumVirtualCPU = math.MaxInt64 / 10
			a.VirtualComputeDescriptor.VirtualMemory.VirtualMemSize = 1e300
			a.VirtualComputeDescriptor.RequestAdditionalCapabilities = []RequestedAdditionalCapabilityData{
				{RequestedAdditionalCapabilityName: "GPU", SupportMandatory: ptr(true), TargetPerformanceParameters: []KeyValuePairs{{"count": int64(math.MaxInt64)}}},
				{RequestedAdditionalCapabilityName: "GPU", SupportMandatory: ptr(true), TargetPerformanceParameters: []KeyValuePairs{{"count": int64(math.MaxInt64)}}},
			}
		}, needs{math.MaxInt64, math.MaxInt64, 0, math.MaxInt64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := sampleAppD(t)
			tt.edit(a)
			var got needs
			got.cpu, got.mem, got.disk, got.gpu = a.ComputeNeeds()
			if got != tt.want {
				t.Errorf("ComputeNeeds() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

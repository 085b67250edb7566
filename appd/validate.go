package appd

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// checker collects FieldErrors; the check methods never stop at the first.
type checker struct {
	errs []FieldError
}

func (c *checker) add(path, format string, args ...any) {
	c.errs = append(c.errs, FieldError{Path: path, Reason: fmt.Sprintf(format, args...)})
}

// required reports (and records) a missing or blank string.
func (c *checker) required(path, s string) bool {
	if strings.TrimSpace(s) == "" {
		c.add(path, "is required")
		return false
	}
	return true
}

func (c *checker) oneOf(path, v string, allowed ...string) {
	if !c.required(path, v) {
		return
	}
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	c.add(path, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

func (c *checker) positive(path string, v float64, unit string) {
	if !(v > 0) {
		c.add(path, "must be greater than 0%s", unit)
	}
}

func (c *checker) notNegative(path string, v float64) {
	if v < 0 {
		c.add(path, "must not be negative")
	}
}

// unique records a duplicate identifier; empty ones are left to required.
func (c *checker) unique(seen map[string]string, path, id string) {
	if id == "" {
		return
	}
	if first, dup := seen[id]; dup {
		c.add(path, "duplicate identifier %q (also at %s)", id, first)
		return
	}
	seen[id] = path
}

// Validate checks what the JSON schema alone cannot: required fields,
// enumerations, value ranges, addresses and cross-field rules of MEC 010-2.
// It returns every problem found, or nil for a valid AppD.
func (a *AppD) Validate() []FieldError {
	if a == nil {
		return []FieldError{{Reason: "no AppD"}}
	}
	c := &checker{}
	c.required("appDId", a.AppDID)
	c.required("appName", a.AppName)
	c.required("appProvider", a.AppProvider)
	c.required("appSoftVersion", a.AppSoftVersion)
	c.required("appDVersion", a.AppDVersion)
	c.required("appDescription", a.AppDescription)
	c.mecVersion(a.MecVersion)
	c.compute(a)
	c.swImages(a)
	c.storage(a.VirtualStorageDescriptor)
	c.extCpds(a.AppExtCpd)
	c.services(a)
	c.trafficRules(a.AppTrafficRule)
	c.dnsRules(a.AppDNSRule)
	c.latency(a.AppLatency)
	c.bandwidth(a.Bandwidth)
	c.opConfigs(a)
	c.contextTransfer(a.UserContextTransferCapability)
	if p := a.AppNetworkPolicy; p != nil && p.SteeredNetwork == nil {
		c.add("appNetworkPolicy.steeredNetwork", "is required")
	}
	for i, v := range a.McioConstraintParams {
		c.oneOf(indexPath("mcioConstraintParams", i), v, mcioConstraintValues()...)
	}
	return c.errs
}

func mcioConstraintValues() []string {
	return []string{"localAffinityCisNode", "nodeAdditionalCapabilitySsd", "nodeAdditionalCapabilityDpdk",
		"nodeAdditionalCapabilitySriov", "nodeAdditionalCapabilityGpu", "nodeAdditionalCapabilityFpga",
		"nodeAdditionalCapabilityCpuPin", "nodeCapabilityLogicalNuma", "nodePool"}
}

// mecVersion entries have the form <x>.<y>.<z> with decimal numbers.
func (c *checker) mecVersion(v StringList) {
	if len(v) == 0 {
		c.add("mecVersion", "is required")
		return
	}
	for i, s := range v {
		p := indexPath("mecVersion", i)
		if !c.required(p, s) {
			continue
		}
		parts := strings.Split(s, ".")
		ok := len(parts) == 3
		for _, part := range parts {
			if _, err := strconv.ParseUint(part, 10, 32); err != nil {
				ok = false
			}
		}
		if !ok {
			c.add(p, "%q is not a version of the form x.y.z", s)
		}
	}
}

func (c *checker) compute(a *AppD) {
	vm, containers := a.VirtualComputeDescriptor != nil, len(a.OsContainerDescriptor) > 0
	switch {
	case !vm && !containers:
		c.add("virtualComputeDescriptor", "is required unless osContainerDescriptor is given (exactly one of them)")
	case vm && containers:
		c.add("osContainerDescriptor", "must not be given together with virtualComputeDescriptor (exactly one of them)")
	}
	if vm {
		c.vcd("virtualComputeDescriptor", a.VirtualComputeDescriptor)
	}
	// NOTE 6 and 7: these describe containers, not a VM. With both kinds
	// given, the error above is the one to fix first.
	if vm && !containers {
		if len(a.LogicalNode) > 0 {
			c.add("logicalNode", "must be absent when virtualComputeDescriptor is given")
		}
		if len(a.RequestAdditionalCapabilities) > 0 {
			c.add("requestAdditionalCapabilities", "must be absent when virtualComputeDescriptor is given")
		}
		if a.McioIdentificationData != nil {
			c.add("mcioIdentificationData", "must be absent when virtualComputeDescriptor is given")
		}
	}
	if containers {
		seen := map[string]string{}
		for i := range a.OsContainerDescriptor {
			p := indexPath("osContainerDescriptor", i)
			c.container(p, &a.OsContainerDescriptor[i])
			c.unique(seen, p+".osContainerDescId", a.OsContainerDescriptor[i].OsContainerDescID)
		}
		if m := a.McioIdentificationData; m == nil {
			if !vm {
				c.add("mcioIdentificationData", "is required when osContainerDescriptor is given")
			}
		} else {
			c.required("mcioIdentificationData.name", m.Name)
			c.required("mcioIdentificationData.type", m.Type)
		}
	}
	c.logicalNodes("logicalNode", a.LogicalNode)
	c.capabilities("requestAdditionalCapabilities", a.RequestAdditionalCapabilities)
}

func (c *checker) vcd(p string, v *VirtualComputeDescriptor) {
	c.required(p+".virtualComputeDescId", v.VirtualComputeDescID)
	if m := v.VirtualMemory; m == nil {
		c.add(p+".virtualMemory", "is required")
	} else {
		c.positive(p+".virtualMemory.virtualMemSize", m.VirtualMemSize, " (MB)")
	}
	if cpu := v.VirtualCPU; cpu == nil {
		c.add(p+".virtualCpu", "is required")
	} else {
		c.positive(p+".virtualCpu.numVirtualCpu", float64(cpu.NumVirtualCPU), "")
		c.notNegative(p+".virtualCpu.virtualCpuClock", cpu.VirtualCPUClock)
		c.pinning(p+".virtualCpu.virtualCpuPinning", cpu.VirtualCPUPinning)
	}
	for i := range v.VirtualDisk {
		c.blockStorage(indexPath(p+".virtualDisk", i), &v.VirtualDisk[i])
	}
	c.logicalNodes(p+".logicalNode", v.LogicalNode)
	c.capabilities(p+".requestAdditionalCapabilities", v.RequestAdditionalCapabilities)
}

func (c *checker) pinning(p string, v *VirtualCPUPinningData) {
	if v != nil && v.VirtualCPUPinningPolicy != "" {
		c.oneOf(p+".virtualCpuPinningPolicy", v.VirtualCPUPinningPolicy, "STATIC", "DYNAMIC")
	}
}

func (c *checker) logicalNodes(p string, nodes []LogicalNodeRequirements) {
	seen := map[string]string{}
	for i, n := range nodes {
		ip := indexPath(p, i) + ".id"
		c.required(ip, n.ID)
		c.unique(seen, ip, n.ID)
	}
}

func (c *checker) capabilities(p string, caps []RequestedAdditionalCapabilityData) {
	for i, r := range caps {
		ip := indexPath(p, i)
		c.required(ip+".requestedAdditionalCapabilityName", r.RequestedAdditionalCapabilityName)
		if r.SupportMandatory == nil {
			c.add(ip+".supportMandatory", "is required")
		}
		if r.TargetPerformanceParameters == nil {
			c.add(ip+".targetPerformanceParameters", "is required")
		}
	}
}

func (c *checker) container(p string, o *OsContainerDescriptor) {
	c.required(p+".osContainerDescId", o.OsContainerDescID)
	c.required(p+".name", o.Name)
	c.required(p+".description", o.Description)
	c.notNegative(p+".requestedCpuResources", float64(o.RequestedCPUResources))
	c.notNegative(p+".requestedMemoryResources", o.RequestedMemoryResources)
	c.notNegative(p+".requestedEphemeralStorageResources", o.RequestedEphemeralStorageResources)
	c.notNegative(p+".cpuResourceLimit", float64(o.CPUResourceLimit))
	c.notNegative(p+".memoryResourceLimit", o.MemoryResourceLimit)
	c.notNegative(p+".ephemeralStorageResourceLimit", o.EphemeralStorageResourceLimit)
	c.limitAboveRequest(p+".cpuResourceLimit", float64(o.CPUResourceLimit), float64(o.RequestedCPUResources))
	c.limitAboveRequest(p+".memoryResourceLimit", o.MemoryResourceLimit, o.RequestedMemoryResources)
	c.limitAboveRequest(p+".ephemeralStorageResourceLimit", o.EphemeralStorageResourceLimit, o.RequestedEphemeralStorageResources)
	c.pinning(p+".cpuPinningRequirements", o.CPUPinningRequirements)
	if o.SwImageDesc == nil {
		c.add(p+".swImageDesc", "is required")
	} else {
		c.swImage(p+".swImageDesc", o.SwImageDesc)
	}
	for i, m := range o.MonitoringParameters {
		mp := indexPath(p+".monitoringParameters", i)
		c.required(mp+".monitoringParameterId", m.MonitoringParameterID)
		c.required(mp+".performanceMetric", m.PerformanceMetric)
	}
}

func (c *checker) limitAboveRequest(p string, limit, request float64) {
	if limit > 0 && request > 0 && limit < request {
		c.add(p, "is below the requested amount (%g < %g)", limit, request)
	}
}

func (c *checker) swImages(a *AppD) {
	if len(a.SwImageDescriptor) == 0 {
		c.add("swImageDescriptor", "is required (at least one software image)")
		return
	}
	if a.VirtualComputeDescriptor != nil && len(a.SwImageDescriptor) > 1 {
		c.add("swImageDescriptor", "must hold a single image when virtualComputeDescriptor is given (it has %d)", len(a.SwImageDescriptor))
	}
	seen := map[string]string{}
	for i := range a.SwImageDescriptor {
		p := indexPath("swImageDescriptor", i)
		c.swImage(p, &a.SwImageDescriptor[i])
		c.unique(seen, p+".id", a.SwImageDescriptor[i].ID)
	}
}

func (c *checker) swImage(p string, s *SwImageDescriptor) {
	c.required(p+".id", s.ID)
	c.required(p+".name", s.Name)
	c.required(p+".version", s.Version)
	c.required(p+".containerFormat", s.ContainerFormat)
	c.notNegative(p+".minDisk", s.MinDisk)
	c.notNegative(p+".minRam", s.MinRAM)
	c.notNegative(p+".size", s.Size)
	if s.SwImage.IsZero() {
		c.add(p+".swImage", "is required")
	}
	if cs := s.Checksum; cs != nil {
		if c.required(p+".checksum.algorithm", cs.Algorithm) && c.required(p+".checksum.hash", cs.Hash) {
			if err := checkHashFormat(Checksum{Algorithm: cs.Algorithm, Hash: cs.Hash}); err != nil {
				c.add(p+".checksum", "%v", err)
			}
		}
	}
}

func (c *checker) storage(vsds []VirtualStorageDescriptor) {
	seen := map[string]string{}
	for i := range vsds {
		v := &vsds[i]
		p := indexPath("virtualStorageDescriptor", i)
		c.unique(seen, p+".id", v.ID)
		c.oneOf(p+".typeOfStorage", v.TypeOfStorage, "BLOCK", "OBJECT", "FILE")
		switch v.TypeOfStorage {
		case "BLOCK":
			if v.BlockStorageData == nil {
				c.add(p+".blockStorageData", "is required when typeOfStorage is BLOCK")
			}
		case "OBJECT":
			if v.ObjectStorageData == nil {
				c.add(p+".objectStorageData", "is required when typeOfStorage is OBJECT")
			}
		case "FILE":
			if v.FileStorageData == nil {
				c.add(p+".fileStorageData", "is required when typeOfStorage is FILE")
			}
		}
		if v.BlockStorageData != nil {
			c.blockStorage(p+".blockStorageData", v.BlockStorageData)
		}
		if v.ObjectStorageData != nil {
			c.notNegative(p+".objectStorageData.maxSizeOfStorage", v.ObjectStorageData.MaxSizeOfStorage)
		}
		if v.FileStorageData != nil {
			c.positive(p+".fileStorageData.sizeOfStorage", v.FileStorageData.SizeOfStorage, " (GB)")
		}
	}
}

func (c *checker) blockStorage(p string, b *BlockStorageData) {
	c.positive(p+".sizeOfStorage", b.SizeOfStorage, " (GB)")
	if b.SwImageDesc != nil {
		c.swImage(p+".swImageDesc", b.SwImageDesc)
	}
}

func (c *checker) opConfigs(a *AppD) {
	if t := a.TerminateAppInstanceOpConfig; t != nil {
		c.timeouts("terminateAppInstanceOpConfig", "minGracefulTerminationTimeout", "maxRecommendedGracefulTerminationTimeout",
			t.MinGracefulTerminationTimeout, t.MaxRecommendedGracefulTerminationTimeout)
	}
	if s := a.ChangeAppInstanceStateOpConfig; s != nil {
		c.timeouts("changeAppInstanceStateOpConfig", "minGracefulStopTimeout", "maxRecommendedGracefulStopTimeout",
			s.MinGracefulStopTimeout, s.MaxRecommendedGracefulStopTimeout)
	}
}

func (c *checker) timeouts(p, minName, maxName string, min, max *float64) {
	if min == nil {
		c.add(p+"."+minName, "is required")
	} else {
		c.notNegative(p+"."+minName, *min)
	}
	if max != nil {
		c.notNegative(p+"."+maxName, *max)
		if min != nil && *max < *min {
			c.add(p+"."+maxName, "is below %s (%g < %g)", minName, *max, *min)
		}
	}
}

func (c *checker) contextTransfer(u *UserContextTransferCapability) {
	if u == nil {
		return
	}
	const p = "userContextTransferCapability"
	switch {
	case u.StatefulApplication == nil:
		c.add(p+".statefulApplication", "is required")
	case *u.StatefulApplication && u.UserContextTransferSupport == nil:
		c.add(p+".userContextTransferSupport", "is required when statefulApplication is true")
	case !*u.StatefulApplication && u.UserContextTransferSupport != nil:
		c.add(p+".userContextTransferSupport", "must be absent when statefulApplication is false")
	}
}

// latency accepts maxLatency (ns) or the older latency + timeUnit pair.
func (c *checker) latency(l *LatencyDescriptor) {
	if l == nil {
		return
	}
	const p = "appLatency"
	if l.hasLegacy() {
		ns, err := l.legacyNanoseconds()
		switch {
		case err != nil:
			c.add(err.path, "%s", err.reason)
		case l.MaxLatency != 0 && l.MaxLatency != ns:
			c.add(p+".maxLatency", "%d ns disagrees with latency %g %s", l.MaxLatency, l.Latency, l.TimeUnit)
		}
		return
	}
	if l.MaxLatency == 0 {
		c.add(p+".maxLatency", "is required and must be greater than 0 (ns)")
	}
}

type pathErr struct{ path, reason string }

// legacyNanoseconds converts latency + timeUnit to nanoseconds.
func (l *LatencyDescriptor) legacyNanoseconds() (uint32, *pathErr) {
	units := map[string]float64{
		"ns": 1, "nanosecond": 1, "nanoseconds": 1,
		"us": 1e3, "µs": 1e3, "microsecond": 1e3, "microseconds": 1e3,
		"ms": 1e6, "millisecond": 1e6, "milliseconds": 1e6,
		"s": 1e9, "second": 1e9, "seconds": 1e9,
	}
	mult, ok := units[strings.ToLower(strings.TrimSpace(l.TimeUnit))]
	if !ok {
		names := make([]string, 0, len(units))
		for k := range units {
			names = append(names, k)
		}
		sort.Strings(names)
		return 0, &pathErr{"appLatency.timeUnit", fmt.Sprintf("%q is not a time unit (%s)", l.TimeUnit, strings.Join(names, ", "))}
	}
	if !(l.Latency > 0) {
		return 0, &pathErr{"appLatency.latency", "must be greater than 0"}
	}
	ns := math.Round(l.Latency * mult)
	if ns > math.MaxUint32 {
		return 0, &pathErr{"appLatency.latency", fmt.Sprintf("%g %s exceeds the largest maxLatency, %d ns", l.Latency, l.TimeUnit, uint32(math.MaxUint32))}
	}
	if ns < 1 {
		return 0, &pathErr{"appLatency.latency", "is below 1 ns"}
	}
	return uint32(ns), nil
}

package appd

import (
	"strconv"
)

// BandwidthDescriptor is one entry of x-mecorch-bandwidth, mecorch's AppD
// extension for the bandwidth an instance's interface may carry. It is
// shaped after MEC 015 BwInfo, with its spellings: AllocationDirection is
// "00" (downlink, towards the UE), "01" (uplink, towards the application)
// or "10" (symmetrical, both); FixedAllocation is the guaranteed rate in
// bits per second, written as a decimal string as MEC 015 does.
// CeilAllocation, mecorch's own, is how far the instance may borrow beyond
// it when the link has room (absent: not beyond FixedAllocation).
type BandwidthDescriptor struct {
	AllocationDirection string `json:"allocationDirection" yaml:"allocationDirection"`
	FixedAllocation     string `json:"fixedAllocation" yaml:"fixedAllocation"`
	CeilAllocation      string `json:"ceilAllocation,omitempty" yaml:"ceilAllocation,omitempty"`
}

// MEC 015 allocation directions.
const (
	BandwidthDownlink    = "00"
	BandwidthUplink      = "01"
	BandwidthSymmetrical = "10"
)

// Bounds of a bandwidth, in bits per second. They are the agent protocol's
// (agentproto.MinRateBps and MaxRateBps, which appd may not import): below
// 8 kbit/s an HTB class starves its own control traffic, above 400 Gbit/s is
// a typo.
const (
	MinBandwidthBps = 8_000
	MaxBandwidthBps = 400_000_000_000
)

// maxBandwidthEntries: one per direction, or one symmetrical.
const maxBandwidthEntries = 2

// Rates returns the downlink and uplink of the extension as guaranteed and
// ceiling rates in bits per second (ceil 0: none given); ok is false for a
// direction not given. The AppD must have been validated.
func Rates(bw []BandwidthDescriptor) (down, up BandwidthRate, downOK, upOK bool) {
	for _, b := range bw {
		fixed, _ := parseBps(b.FixedAllocation)
		var ceil uint64
		if b.CeilAllocation != "" {
			ceil, _ = parseBps(b.CeilAllocation)
		}
		r := BandwidthRate{FixedBps: fixed, CeilBps: ceil}
		switch b.AllocationDirection {
		case BandwidthDownlink:
			down, downOK = r, true
		case BandwidthUplink:
			up, upOK = r, true
		case BandwidthSymmetrical:
			down, downOK = r, true
			up, upOK = r, true
		}
	}
	return down, up, downOK, upOK
}

// BandwidthRate is one direction's rates, in bits per second.
type BandwidthRate struct {
	FixedBps uint64
	CeilBps  uint64 // 0: no ceiling above FixedBps
}

// parseBps reads a MEC 015 bit rate: decimal digits only (no sign, no
// exponent, no unit), so that "1e6" or "10M" fail loudly instead of being
// read as something else.
func parseBps(s string) (uint64, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// bandwidth checks x-mecorch-bandwidth: at most two entries, each
// direction at most once (symmetrical counts as both), rates within
// MinBandwidthBps..MaxBandwidthBps and a ceiling not below the fixed rate.
func (c *checker) bandwidth(bw []BandwidthDescriptor) {
	const base = "x-mecorch-bandwidth"
	if len(bw) > maxBandwidthEntries {
		c.add(base, "at most %d entries: one per direction, or one symmetrical", maxBandwidthEntries)
		return
	}
	var downAt, upAt string // the entry that gave each direction
	for i := range bw {
		b := &bw[i]
		p := indexPath(base, i)
		dir := joinPath(p, "allocationDirection")
		c.oneOf(dir, b.AllocationDirection, BandwidthDownlink, BandwidthUplink, BandwidthSymmetrical)
		down := b.AllocationDirection == BandwidthDownlink || b.AllocationDirection == BandwidthSymmetrical
		up := b.AllocationDirection == BandwidthUplink || b.AllocationDirection == BandwidthSymmetrical
		switch {
		case down && downAt != "":
			c.add(dir, "the downlink is given already (by %s)", downAt)
		case up && upAt != "":
			c.add(dir, "the uplink is given already (by %s)", upAt)
		}
		if down && downAt == "" {
			downAt = p
		}
		if up && upAt == "" {
			upAt = p
		}
		fixedPath := joinPath(p, "fixedAllocation")
		fixed, fixedOK := uint64(0), false
		if c.required(fixedPath, b.FixedAllocation) {
			fixed, fixedOK = c.bps(fixedPath, b.FixedAllocation)
		}
		if b.CeilAllocation != "" {
			ceilPath := joinPath(p, "ceilAllocation")
			if ceil, ok := c.bps(ceilPath, b.CeilAllocation); ok && fixedOK && ceil < fixed {
				c.add(ceilPath, "must not be below fixedAllocation (%d bits/s)", fixed)
			}
		}
	}
}

// bps checks one rate and returns it when it is within bounds.
func (c *checker) bps(path, s string) (uint64, bool) {
	v, ok := parseBps(s)
	switch {
	case !ok:
		c.add(path, "must be a whole number of bits per second in decimal digits, as a string (e.g. \"20000000\")")
		return 0, false
	case v < MinBandwidthBps || v > MaxBandwidthBps:
		c.add(path, "must be from %d to %d bits/s", MinBandwidthBps, uint64(MaxBandwidthBps))
		return 0, false
	}
	return v, true
}

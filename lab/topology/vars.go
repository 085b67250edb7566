package topology

import (
	"time"

	"gopkg.in/yaml.v3"
)

// Link impairments live in the link's vars, which containerlab accepts
// and ignores:
//
//	vars: {delay: 2ms, jitter: 0.2ms, loss: 0.1, rate: 100000}
//
// applies both ways (delay and jitter in Go duration syntax, loss in
// percent, rate in kbit/s); a-to-b and b-to-a, holding the same keys,
// override them field by field for one direction, a being the link's
// first endpoint.
const (
	varDelay  = "delay"
	varJitter = "jitter"
	varLoss   = "loss"
	varRate   = "rate"
	varAtoB   = "a-to-b"
	varBtoA   = "b-to-a"
	maxDelay  = 10 * time.Second
)

// MaxRateKbit bounds a link's rate: 1 Tbit/s, far above what a lab link
// carries, and far below where the arithmetic of a rate would overflow.
const MaxRateKbit = 1_000_000_000

var (
	impairmentKeys = []string{varDelay, varJitter, varLoss, varRate}
	linkVarKeys    = []string{varDelay, varJitter, varLoss, varRate, varAtoB, varBtoA}
)

// impSpec is the set fields of one vars level, with where each was set.
type impSpec struct {
	delay, jitter         *time.Duration
	loss                  *float64
	rate                  *int64
	delayKey, jitterKey   *yaml.Node
	delayPath, jitterPath string
}

func (p *parser) impairments(n *yaml.Node, path string) (aToB, bToA Impairment) {
	entries, ok := p.mapping(n, path)
	if !ok {
		return
	}
	base := p.impSpec(entries, path, true)
	dirs := map[string]impSpec{}
	for _, e := range entries {
		if e.name == varAtoB || e.name == varBtoA {
			fp := join(path, e.name)
			des, _ := p.mapping(e.val, fp)
			dirs[e.name] = p.impSpec(des, fp, false)
		}
	}
	return p.resolve(base, dirs[varAtoB]), p.resolve(base, dirs[varBtoA])
}

func (p *parser) impSpec(entries []entry, path string, top bool) impSpec {
	var s impSpec
	for _, e := range entries {
		fp := join(path, e.name)
		switch e.name {
		case varDelay, varJitter:
			d, ok := p.duration(e.val, fp)
			switch {
			case !ok:
			case d < 0:
				p.add(e.key, fp, "%s must not be negative", e.name)
			case d >= maxDelay:
				p.add(e.key, fp, "%s %s is not below %s", e.name, d, maxDelay)
			case e.name == varDelay:
				s.delay, s.delayKey, s.delayPath = &d, e.key, fp
			default:
				s.jitter, s.jitterKey, s.jitterPath = &d, e.key, fp
			}
		case varLoss:
			if v, ok := p.number(e.val, fp); ok {
				if !(v >= 0 && v <= 100) {
					p.add(e.key, fp, "loss is a percentage: 0 to 100, not %v", v)
				} else {
					s.loss = &v
				}
			}
		case varRate:
			if v, ok := p.integer(e.val, fp); ok {
				if v < 0 || v > MaxRateKbit {
					p.add(e.key, fp, "rate (kbit/s) must be from 0 to %d", MaxRateKbit)
				} else {
					s.rate = &v
				}
			}
		case varAtoB, varBtoA:
			if !top {
				p.add(e.key, fp, "directions do not nest")
			}
		default:
			keys := impairmentKeys
			if top {
				keys = linkVarKeys
			}
			p.unknown(e, path, nil, keys)
		}
	}
	return s
}

// resolve lays a direction's settings over the link's.
func (p *parser) resolve(base, dir impSpec) Impairment {
	if dir.delay != nil {
		base.delay, base.delayKey, base.delayPath = dir.delay, dir.delayKey, dir.delayPath
	}
	if dir.jitter != nil {
		base.jitter, base.jitterKey, base.jitterPath = dir.jitter, dir.jitterKey, dir.jitterPath
	}
	if dir.loss != nil {
		base.loss = dir.loss
	}
	if dir.rate != nil {
		base.rate = dir.rate
	}
	var im Impairment
	if base.delay != nil {
		im.Delay = *base.delay
	}
	if base.jitter != nil {
		im.Jitter = *base.jitter
	}
	if base.loss != nil {
		im.LossPct = *base.loss
	}
	if base.rate != nil {
		im.RateKbit = *base.rate
	}
	if im.Jitter > im.Delay {
		// netem varies the delay by up to the jitter either way.
		p.add(base.jitterKey, base.jitterPath, "jitter %s is more than the delay %s", im.Jitter, im.Delay)
	}
	return im
}

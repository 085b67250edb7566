package apprun

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/mecorch/mecorch/traffic/netns"
)

// Sweep implements Runtime. Besides the instances it knows, it looks for
// what a crash can leave without a usable record: state directories,
// namespaces with its prefix, cgroups under its parent, and links with its
// prefix in the host namespace. A leftover's id comes from its record when
// there is one, else from its name (the id itself for plain ids); a link
// is kept only if it belongs to a known or kept id.
func (p *Process) Sweep(ctx context.Context, keep func(id string) bool) error {
	if p.isClosed() {
		return ErrClosed
	}
	var errs []error
	for _, in := range p.snapshot() {
		if !keep(in.id) {
			if err := p.Remove(ctx, in.id); err != nil {
				errs = append(errs, err)
			}
		}
	}
	// Held throughout, so that no Start makes an instance whose pieces
	// would look like leftovers.
	p.mu.Lock()
	defer p.mu.Unlock()
	known := map[string]bool{}   // keys
	keptIDs := map[string]bool{} // ids whose link stays
	for _, in := range p.insts {
		known[in.key] = true
		keptIDs[in.id] = true
	}
	leftovers := map[string]string{} // key → id
	seen := map[string]bool{}
	consider := func(key string) {
		if known[key] || seen[key] {
			return
		}
		seen[key] = true
		id := key
		if rec, err := readRecord(filepath.Join(p.cfg.StateDir, key)); err == nil {
			id = rec.Spec.ID
		}
		if keep(id) {
			keptIDs[id] = true
		} else {
			leftovers[key] = id
		}
	}
	dirs, err := subdirs(p.cfg.StateDir)
	errs = append(errs, err)
	for _, k := range dirs {
		consider(k)
	}
	names, err := netns.List(p.cfg.NetnsDir, p.cfg.NetnsPrefix)
	errs = append(errs, err)
	for _, n := range names {
		consider(strings.TrimPrefix(n, p.cfg.NetnsPrefix))
	}
	cgs, err := p.cg.keys()
	errs = append(errs, err)
	for _, k := range cgs {
		consider(k)
	}
	for key, id := range leftovers {
		p.log.Info("sweeping leftover instance", "instance", id, "key", key)
		errs = append(errs, p.destroy(ctx, key, id))
	}
	kept := map[string]bool{}
	for id := range keptIDs {
		kept[netns.VethName(p.cfg.VethPrefix, id)] = true
	}
	links, err := netns.Links(p.cfg.HostNetns, p.cfg.VethPrefix, "veth")
	errs = append(errs, err)
	for _, l := range links {
		if !kept[l] {
			p.log.Info("sweeping leftover link", "link", l)
			errs = append(errs, netns.DelVeth(p.cfg.HostNetns, l))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sweep: %w", err)
	}
	return nil
}

package agent

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/mec/agentproto"
	"github.com/mecorch/mecorch/traffic/netns"
	"github.com/mecorch/mecorch/traffic/qos"
)

// qosSet shapes running instances: one traffic/qos Shaper per shaped
// direction of each instance, on the link that carries that direction out
// (a tcx program only sees egress). Every packet on such a link is the
// instance's, so no SetApp is needed: the shaper's default class is the
// instance's limit (traffic/qos README, "Choosing the key").
//
// Owned by Steering and called under Steering.mu; it has no lock of its own.
type qosSet struct {
	log  *slog.Logger
	inst map[string]*shapedInst
}

// shapedInst is what qosSet did for one instance.
type shapedInst struct {
	hostIfindex      int // of the host end when the shapers were made
	toInst, fromInst shapedDir
}

// shapedDir is one direction of one instance: its shaper (nil: unshaped)
// and the rate it was made with.
type shapedDir struct {
	s    *qos.Shaper
	rate agentproto.Rate
	// settled: the link is as s says. It is false until a first apply
	// succeeded, and after a failure, so that the work is retried.
	settled bool
}

func newQoSSet(log *slog.Logger) *qosSet {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &qosSet{log: log, inst: map[string]*shapedInst{}}
}

// apply makes instance id shaped as bw says. The directions are MEC 015's:
// Uplink (from UEs, towards the instance) is shaped on the egress of the
// host end of its veth (hostLink in hostNetns), Downlink (what the instance
// sends towards UEs) on the egress of its own end (instLink in instNetns). A nil bw or direction leaves that
// direction unshaped and removes a shaper it had. Nothing is touched when
// bw and hostIfindex are what they were; a new ifindex means a new veth
// (and with it, a new namespace), so both directions are shaped anew.
//
// A direction that fails is left unshaped and retried on the next call;
// the other direction is still applied.
func (q *qosSet) apply(id string, bw *agentproto.Bandwidth, hostNetns, hostLink, instNetns, instLink string, hostIfindex int) error {
	var toInst, fromInst *agentproto.Rate
	if bw != nil {
		toInst, fromInst = bw.Uplink, bw.Downlink
	}
	st := q.inst[id]
	if st != nil && st.hostIfindex != hostIfindex {
		// The old links went with the old veth; Close copes with that.
		if err := st.closeAll(); err != nil {
			q.log.Debug("qos: drop shapers of a replaced veth", "instance", id, "err", err)
		}
		st = nil
	}
	if st == nil {
		// Recorded even when nothing is to be shaped, so that an
		// unshaped instance costs nothing on the next pass either.
		st = &shapedInst{hostIfindex: hostIfindex}
		q.inst[id] = st
	}
	return errors.Join(
		q.applyDir(id, "uplink", &st.toInst, toInst, hostNetns, hostLink),
		q.applyDir(id, "downlink", &st.fromInst, fromInst, instNetns, instLink),
	)
}

// applyDir brings one direction to want (nil: unshaped). qos.Shaper cannot
// change its default class in place, so a new rate is a new shaper: the
// old tree is deleted first (New would take over a live one's root, and its
// Close would then delete the new tree), which leaves the link unshaped for
// the moment in between.
//
// An unshaped direction seen for the first time has an HTB that an agent
// which crashed may have left on its link removed: it would go on shaping
// (without its program every packet falls into the default class).
func (q *qosSet) applyDir(id, dir string, d *shapedDir, want *agentproto.Rate, nsPath, linkName string) error {
	if d.settled && (want == nil && d.s == nil || want != nil && d.s != nil && d.rate == *want) {
		return nil
	}
	if d.s != nil {
		err := d.s.Close()
		*d = shapedDir{}
		if err != nil {
			return fmt.Errorf("instance %s: %s: remove shaper: %w", id, dir, err)
		}
		q.log.Info("qos: instance unshaped", "instance", id, "direction", dir, "link", linkName)
	}
	if want == nil {
		if err := clearStaleHTB(nsPath, linkName); err != nil {
			return fmt.Errorf("instance %s: %s: %w", id, dir, err)
		}
		d.settled = true
		return nil
	}
	ceil := want.CeilBps
	if ceil == 0 {
		ceil = want.RateBps
	}
	s, err := qos.New(nsPath, qos.Config{
		Link:        linkName,
		LinkRate:    ceil,
		DefaultRate: want.RateBps,
		DefaultCeil: ceil,
		// Every packet on the link is the instance's; the direction of
		// keying only matters for SetApp, which is not used here.
		Direction: qos.ByDestination,
	})
	if err != nil {
		return fmt.Errorf("instance %s: %s: %w", id, dir, err)
	}
	*d = shapedDir{s: s, rate: *want, settled: true}
	q.log.Info("qos: instance shaped", "instance", id, "direction", dir, "link", linkName,
		"rateBps", want.RateBps, "ceilBps", ceil)
	return nil
}

// remove drops the shapers of an instance that is gone or no longer runs:
// its qdiscs are deleted if the links still exist, and a vanished link is
// not an error. An unknown id is a no-op.
func (q *qosSet) remove(id string) error {
	st, ok := q.inst[id]
	if !ok {
		return nil
	}
	delete(q.inst, id)
	shaped := st.toInst.s != nil || st.fromInst.s != nil
	if err := st.closeAll(); err != nil {
		return fmt.Errorf("instance %s: %w", id, err)
	}
	if shaped {
		q.log.Info("qos: instance unshaped", "instance", id)
	}
	return nil
}

// close removes every instance's shapers.
func (q *qosSet) close() error {
	var errs []error
	for id := range q.inst {
		errs = append(errs, q.remove(id))
	}
	return errors.Join(errs...)
}

func (st *shapedInst) closeAll() error {
	var errs []error
	for _, d := range []*shapedDir{&st.toInst, &st.fromInst} {
		if d.s != nil {
			errs = append(errs, d.s.Close())
			*d = shapedDir{}
		}
	}
	return errors.Join(errs...)
}

// clearStaleHTB deletes the HTB root 1: that traffic/qos makes, if one is
// on the link; a missing link or namespace is not an error (the instance is
// going away, or was never shaped). Another root qdisc is not ours and is
// left alone.
func clearStaleHTB(nsPath, linkName string) error {
	if nsPath != "" && !netns.IsMounted(nsPath) {
		return nil
	}
	h, err := netns.Handle(nsPath)
	if err != nil {
		return fmt.Errorf("qos: %w", err)
	}
	defer h.Close()
	l, err := h.LinkByName(linkName)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil
		}
		return fmt.Errorf("qos: link %s: %w", linkName, err)
	}
	qs, err := h.QdiscList(l)
	if err != nil {
		return fmt.Errorf("qos: list qdiscs of %s: %w", linkName, err)
	}
	for _, qd := range qs {
		a := qd.Attrs()
		if a.Parent != netlink.HANDLE_ROOT || qd.Type() != "htb" || a.Handle != netlink.MakeHandle(1, 0) {
			continue
		}
		if err := h.QdiscDel(qd); err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
			return fmt.Errorf("qos: remove stale htb on %s: %w", linkName, err)
		}
	}
	return nil
}

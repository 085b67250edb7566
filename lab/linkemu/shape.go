package linkemu

import (
	"fmt"
	"math"

	"github.com/vishvananda/netlink"
)

// A link's rate is the kernel's: a tbf on the sending node's interface
// paces what it sends, before the relay adds the delay, jitter and loss.
// (The kernel has tbf and htb, but no netem; see DESIGN.md.)

// shape puts a tbf of rateKbit kbit/s on side's interface, replacing the
// one there; 0 removes it.
func shape(side Side, rateKbit int64, mtu int) error {
	h, err := handleIn(side.Netns)
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(side.Iface)
	if err != nil {
		return fmt.Errorf("shape %s: %w", side.Iface, err)
	}
	if rateKbit == 0 {
		qs, err := h.QdiscList(l)
		if err != nil {
			return fmt.Errorf("shape %s: %w", side.Iface, err)
		}
		for _, q := range qs {
			if q.Attrs().Parent == netlink.HANDLE_ROOT && q.Type() == "tbf" {
				if err := h.QdiscDel(q); err != nil {
					return fmt.Errorf("unshape %s: %w", side.Iface, err)
				}
			}
		}
		return nil
	}
	if mtu == 0 {
		mtu = 1500
	}
	rate := uint64(rateKbit) * 1000 / 8 // bytes per second
	// A burst of 4 ms of traffic (at least two full frames), and a queue of
	// 50 ms more before the tail is dropped.
	burst := min(max(rate/250, uint64(2*(mtu+14))), math.MaxUint32/4)
	limit := min(rate/20+burst, math.MaxUint32/2)
	q := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index, Handle: netlink.MakeHandle(1, 0), Parent: netlink.HANDLE_ROOT},
		Rate:       rate,
		Limit:      uint32(limit),
		Buffer:     netlink.Xmittime(rate, uint32(burst)),
	}
	if err := h.QdiscReplace(q); err != nil {
		return fmt.Errorf("shape %s to %d kbit/s: %w", side.Iface, rateKbit, err)
	}
	return nil
}

// shapedDrops is what side's tbf dropped (0 without one).
func shapedDrops(side Side) (uint64, error) {
	h, err := handleIn(side.Netns)
	if err != nil {
		return 0, err
	}
	defer h.Close()
	l, err := h.LinkByName(side.Iface)
	if err != nil {
		return 0, err
	}
	qs, err := h.QdiscList(l)
	if err != nil {
		return 0, err
	}
	for _, q := range qs {
		if q.Type() == "tbf" && q.Attrs().Statistics != nil && q.Attrs().Statistics.Queue != nil {
			return uint64(q.Attrs().Statistics.Queue.Drops), nil
		}
	}
	return 0, nil
}

// relayed is p without its rate, which the kernel applies (see shape).
func relayed(p Params) Params {
	p.RateKbit = 0
	return p
}

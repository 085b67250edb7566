package steerpath

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/mecorch/mecorch/traffic/netns"
)

const tcActShot = 2

// baselineProg redirects every packet to ifindex's egress and does nothing
// else. It is the baseline because it differs from the classifier in one
// thing only, the classifier's own work: same hook (tcx ingress on the same
// veth), same helper (bpf_redirect) to the same veth, same sink behind it.
// What the classifier adds on top (parse Ethernet/IPv4/UDP/GTP-U and its
// extension header, scan the rules, bpf_skb_adjust_room, rewrite the MAC,
// count) is the difference between the two. Plain kernel forwarding would
// compare the classifier with a FIB lookup, neighbour resolution and a TTL
// decrement, none of which the steered path does.
func baselineProg(ifindex int) (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:    "steer_baseline",
		Type:    ebpf.SchedCLS,
		License: "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R1, int32(ifindex)),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRedirect.Call(),
			asm.Return(),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("load baseline program: %w", err)
	}
	return p, nil
}

// dropProg drops every packet. As the app's sink it ends every frame the
// same way in every case, right after the app's veth has counted it, so the
// app's own stack is not part of what is measured. At dut's ingress it
// makes the sender-only case: the receive side does as little as it can.
func dropProg() (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "steer_drop",
		Type:         ebpf.SchedCLS,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, tcActShot), asm.Return()},
	})
	if err != nil {
		return nil, fmt.Errorf("load drop program: %w", err)
	}
	return p, nil
}

// attachIngress attaches prog with tcx at ingress of the link ifindex of the
// namespace on nsPath: the kernel resolves the index in the namespace of
// the attaching thread.
func attachIngress(nsPath string, ifindex int, prog *ebpf.Program) (link.Link, error) {
	var l link.Link
	err := netns.Do(nsPath, func() error {
		var err error
		l, err = link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("attach tcx ingress on link %d in %s: %w", ifindex, nsPath, err)
	}
	return l, nil
}

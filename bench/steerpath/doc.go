// Package steerpath is a load driver for the GTP-U decap/redirect path of
// traffic/classify between network namespaces:
//
//	gen[sgen] ── [sdutg]dut[sduta] ── [sapp]app
//
// gen (the RAN side) floods dut (the edge host) with pre-built Ethernet
// frames carrying GTP-U G-PDUs (PDU Session Container, inner IPv4/UDP to the
// app) from one AF_PACKET socket (PACKET_QDISC_BYPASS, sendmmsg) on one
// pinned thread. The classifier, attached with tcx at ingress of sdutg,
// decapsulates them (FORWARD_DECAPSULATED, Dest.MAC the app's) and redirects
// the inner packet to sduta; app counts what reaches sapp (its rx counters,
// read over netlink) and drops it there with a tcx program, so that the
// app's own stack is not part of the figure.
//
// Each inner size is first checked: a few frames go through every case with
// the app's stack in place, and must arrive byte for byte as expected (the
// decapsulated frame must also reach a UDP socket in app). Then the cases run
// in turn, several rounds (ABAB), each checked over the whole run: every
// frame the kernel took entered dut, the matching rule counted every one
// that entered, and sapp received only frames of the decapsulated length.
//
// The cases: sender-only (dut drops everything at ingress: the sender's own
// rate), baseline (a tcx program that only redirects, see baselineProg) and
// the classifier with each rule-set size, the matching rule last.
//
// Two modes. Inline, all of the receive path runs on the sender's CPU
// inside its system calls, so the thread's CPU time per frame is the whole
// cost. Pipeline, RPS moves dut's and app's receive processing to a second
// CPU, so sender and receive side are two stages and the one that runs out
// of CPU is the bottleneck: the receive side when frames are dropped on its
// backlog or its CPU has no idle time left.
//
// It needs root. `make bench-steer` runs the benchmark; the package's test
// runs it for a fraction of a second so that it cannot rot.
package steerpath

// Package classifynft compares the cost per packet of the eBPF traffic-rule
// classifier (traffic/classify, attached with tcx) with nftables doing the
// same classification (a netdev ingress chain, linear and set-based) on the
// same frames, on a veth pair between two network namespaces. It holds only
// a benchmark (classifynft_test.go); it needs root, and shells out to `ip`
// and `nft`, which is acceptable here because it is bench-only code.
package classifynft

//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/* Per-app QoS at tcx egress: pick the HTB class of the packet's app instance
 * by setting skb->priority to the class handle. HTB looks skb->priority up
 * as a class id before it runs any filter, and that is the only selection a
 * tcx program has: tc_classid is only honoured for cls_bpf in direct-action
 * mode, not for tcx. A packet whose address is not in the map still gets an
 * explicit class (the default one), because a priority left at whatever the
 * socket set could name some other class, or HTB's unshaped direct queue. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "qos.h"

/* The UAPI headers here are Linux 6.1's, older than tcx. */
#define TCX_NEXT -1

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
/* Offsets of the addresses inside the IP headers. */
#define IP4_SRC 12
#define IP4_DST 16
#define IP6_SRC 8
#define IP6_DST 24

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct settings);
} config SEC(".maps");

/* App instance address -> HTB class handle. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ADDRS);
	__type(key, struct addr_key);
	__type(value, __u32);
} classes SEC(".maps");

/* Reads the source or destination address into k; returns 0 when the packet
 * is not IP (ARP, for one) or too short, so that it takes the default. */
static __always_inline int load_addr(struct __sk_buff *skb, __u32 dir, struct addr_key *k)
{
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		__u32 off = ETH_HLEN + (dir == QOS_BY_DESTINATION ? IP4_DST : IP4_SRC);
		k->addr[10] = 0xff;
		k->addr[11] = 0xff;
		return bpf_skb_load_bytes(skb, off, &k->addr[12], 4) == 0;
	}
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		__u32 off = ETH_HLEN + (dir == QOS_BY_DESTINATION ? IP6_DST : IP6_SRC);
		return bpf_skb_load_bytes(skb, off, k->addr, 16) == 0;
	}
	return 0;
}

SEC("tcx/egress")
int qos(struct __sk_buff *skb)
{
	__u32 zero = 0;
	struct settings *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return TCX_NEXT;
	/* Not configured yet (no default class): leave the packet alone rather
	 * than send it to class 0, which HTB would treat as unclassified. */
	if (!cfg->default_class)
		return TCX_NEXT;

	__u32 class = cfg->default_class;
	struct addr_key k = {};
	if (load_addr(skb, cfg->direction, &k)) {
		__u32 *c = bpf_map_lookup_elem(&classes, &k);
		if (c)
			class = *c;
	}
	skb->priority = class;
	/* Let later tcx programs (the traffic-rule classifier) run too. */
	return TCX_NEXT;
}

char __license[] SEC("license") = "GPL";

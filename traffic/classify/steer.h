/* Steering (what FORWARD_* and DUPLICATE_* do with a classified packet) and
 * learning the UE paths the return path needs. Included by classify.c after
 * struct pkt, whose parse results it consumes. */
#ifndef MECORCH_STEER_H
#define MECORCH_STEER_H

/* BPF_F_ADJ_ROOM_DECAP_L3_IPV4/IPV6 arrived in Linux 6.3; Debian's
 * libbpf-dev ships 6.1 UAPI headers without them. Own names, so a newer
 * header's enum members of the same value cannot clash with a macro. */
#define ADJ_ROOM_DECAP_L3_IPV4 (1ULL << 7)
#define ADJ_ROOM_DECAP_L3_IPV6 (1ULL << 8)

/* Outer headers (IP + UDP + GTP-U with extensions) a DUPLICATE_DECAPSULATED
 * packet may carry: they are saved to put the original back together. */
#define MAX_SAVE 128

/* LRU, so learning can never fill it: under a flood of distinct UEs the
 * least recently used entries (learnt or set by the agent) are evicted
 * instead of new ones being refused. The return path's lookups count as use,
 * so a UE with traffic stays. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ue_key);
	__type(value, struct ue_path);
} ues SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} settings SEC(".maps");

/* The UE pools: with CFG_UE_NETS, the return path treats only destinations
 * inside them as UE traffic, so an app's other traffic (DNS, the core, the
 * orchestrator) is routed as usual instead of dropped as an unknown UE. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct ue_net);
	__type(value, __u8);
} ue_nets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

struct outer_save {
	__u8 b[MAX_SAVE];
};

/* Per-CPU scratch: 128 bytes is too much for the 512-byte stack on top of
 * struct walk. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct outer_save);
} scratch SEC(".maps");

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		(*v)++;
}

/* learn_ue records, from a downlink G-PDU, the tunnel that reaches its inner
 * destination (the UE). Downlink is read from the PDU Session Container (type
 * 0, TS 38.415), which every N3 G-PDU carries, so the program needs no notion
 * of which interface it runs on. The return path only builds IPv4 outer
 * headers, so only IPv4 tunnels are learnt. */
static __always_inline void learn_ue(const struct pkt *p)
{
	__u32 zero = 0;
	struct config *cfg;
	struct ue_key k = {};
	struct ue_path v = {}, *cur;

	if (!p->gtpu || !p->qfi_ok || p->pdu_type != 0 || p->outer.family != 4)
		return;
	cfg = bpf_map_lookup_elem(&settings, &zero);
	if (!cfg || !(cfg->flags & CFG_LEARN))
		return;
	if (p->inner.family == 4) {
		k.addr[10] = 0xff;
		k.addr[11] = 0xff;
		__builtin_memcpy(&k.addr[12], &p->inner.dst[0], 4);
	} else {
		__builtin_memcpy(k.addr, p->inner.dst, 16);
	}
	/* Downlink runs UPF -> gNB: the outer destination is the gNB, the outer
	 * source the address the gNB expects return traffic from. */
	__builtin_memcpy(v.gnb, &p->outer.dst[0], 4);
	__builtin_memcpy(v.source, &p->outer.src[0], 4);
	v.teid = p->teid;
	v.qfi = p->qfi;
	/* Lookup first: a hash update per downlink packet would cost a
	 * allocation and an RCU free for nothing. */
	cur = bpf_map_lookup_elem(&ues, &k);
	if (cur && cur->teid == v.teid && cur->qfi == v.qfi &&
	    __builtin_memcmp(cur->gnb, v.gnb, 4) == 0 && __builtin_memcmp(cur->source, v.source, 4) == 0)
		return;
	if (bpf_map_update_elem(&ues, &k, &v, BPF_ANY) == 0)
		stat_inc(STAT_LEARNED);
}

/* decap removes the outer IP/UDP/GTP-U headers (extensions included) so the
 * inner packet follows the Ethernet header, and sets the Ethernet type to the
 * inner family's. Returns 0 when done, 1 when it cannot (packet unchanged),
 * -1 when the packet was left half-done. A VLAN tag is not handled: with
 * BPF_ADJ_ROOM_MAC the kernel cuts at the network header, behind the tag's
 * ethertype, so the result would be wrong. */
static __always_inline int decap(struct __sk_buff *skb, const struct pkt *p)
{
	__u32 hl = p->inner_off - ETH_HLEN;
	__u16 et = bpf_htons(p->inner.family == 6 ? ETH_P_IPV6 : ETH_P_IP);
	__u64 fl = p->inner.family == 6 ? ADJ_ROOM_DECAP_L3_IPV6 : ADJ_ROOM_DECAP_L3_IPV4;

	if (p->vlan || !p->gtpu || hl == 0 || hl > 0xfff)
		return 1;
	if (bpf_skb_adjust_room(skb, -(__s32)hl, BPF_ADJ_ROOM_MAC, fl))
		return 1;
	if (bpf_skb_store_bytes(skb, 12, &et, 2, 0))
		return -1;
	return 0;
}

/* remark gives the IP header at off the DSCP set_dscp - 1 (0: nothing to
 * do): IPv4's TOS with its header checksum fixed, IPv6's traffic class.
 * ECN bits are kept. Returns 1 + the DSCP it replaced, for a restore, or 0
 * when it changed nothing. */
static __always_inline __u8 remark(struct __sk_buff *skb, __u32 off, __u8 family, __u8 set_dscp)
{
	__u8 b[2], n[2];
	__u16 from, to;

	if (!set_dscp || bpf_skb_load_bytes(skb, off, b, 2) < 0)
		return 0;
	if (family == 4) {
		n[0] = b[0];
		n[1] = ((set_dscp - 1) << 2) | (b[1] & 3);
		if (n[1] == b[1])
			return 0;
		__builtin_memcpy(&from, b, 2);
		__builtin_memcpy(&to, n, 2);
		if (bpf_l3_csum_replace(skb, off + 10, from, to, 2) || bpf_skb_store_bytes(skb, off + 1, &n[1], 1, 0)) {
			stat_inc(STAT_STEER_FAIL);
			return 0;
		}
		return (b[1] >> 2) + 1;
	}
	if (family == 6) {
		__u8 tc = ((b[0] & 0x0f) << 4) | (b[1] >> 4);
		__u8 ntc = ((set_dscp - 1) << 2) | (tc & 3);

		if (ntc == tc)
			return 0;
		n[0] = (b[0] & 0xf0) | (ntc >> 4);
		n[1] = (ntc << 4) | (b[1] & 0x0f);
		if (bpf_skb_store_bytes(skb, off, n, 2, 0)) {
			stat_inc(STAT_STEER_FAIL);
			return 0;
		}
		return (tc >> 2) + 1;
	}
	return 0;
}

/* ipat is where a packet's (outer, or after decap the only) IP header is. */
struct ipat {
	__u32 off;
	__u8 family;
	__u8 set_dscp;
};

static __always_inline int mac_set(const __u8 *m)
{
	return m[0] | m[1] | m[2] | m[3] | m[4] | m[5];
}

/* forward redirects the packet to ifindex, addressed to the app (dmac) when
 * a MAC is given: the frame still names the RAN-side interface, and the
 * app's stack takes only frames addressed to it. */
static __always_inline int forward(struct __sk_buff *skb, __u32 ifindex, const __u8 *dmac, struct ipat at)
{
	__u8 mac[6];

	remark(skb, at.off, at.family, at.set_dscp);
	__builtin_memcpy(mac, dmac, 6);
	if (mac_set(mac) && bpf_skb_store_bytes(skb, 0, mac, 6, 0))
		stat_inc(STAT_STEER_FAIL); /* sent anyway: it may be the app's own MAC */
	return bpf_redirect(ifindex, 0);
}

/* clone_to sends a copy of the packet, as it is now, to ifindex. A clone
 * cannot be modified from here, so for a copy addressed to the app (dmac
 * set) the original gets the app's MAC, is cloned, and gets its own
 * destination back. Returns 0, or -1 when the original could not be
 * restored and must not go on. */
static __always_inline int clone_to(struct __sk_buff *skb, __u32 ifindex, const __u8 *dmac, struct ipat at)
{
	__u8 mac[6], orig[6], was;

	/* The copy gets the rule's DSCP, the original its own back. */
	was = remark(skb, at.off, at.family, at.set_dscp);
	__builtin_memcpy(mac, dmac, 6);
	if (mac_set(mac)) {
		if (bpf_skb_load_bytes(skb, 0, orig, 6) < 0 || bpf_skb_store_bytes(skb, 0, mac, 6, 0)) {
			/* No copy rather than one the app's stack drops. */
			stat_inc(STAT_STEER_FAIL);
			if (was && remark(skb, at.off, at.family, was) == 0)
				return -1;
			return 0;
		}
	}
	if (bpf_clone_redirect(skb, ifindex, 0))
		stat_inc(STAT_STEER_FAIL); /* the original still goes on */
	if (mac_set(mac) && bpf_skb_store_bytes(skb, 0, orig, 6, 0)) {
		stat_inc(STAT_STEER_FAIL);
		return -1;
	}
	if (was && remark(skb, at.off, at.family, was) == 0)
		return -1; /* the original's DSCP could not be put back */
	return 0;
}

/* dup_decap sends a decapsulated copy to ifindex and leaves the original as
 * it came: a clone cannot be modified from here, so the original itself is
 * decapsulated, cloned, and re-encapsulated from the saved outer headers. */
static __always_inline int dup_decap(struct __sk_buff *skb, const struct pkt *p, __u32 ifindex,
				     const __u8 *dmac, __u8 set_dscp)
{
	struct ipat at = {.off = ETH_HLEN, .family = p->inner.family, .set_dscp = set_dscp};
	__u32 zero = 0;
	__u64 hl = p->inner_off - ETH_HLEN;
	__u16 et = bpf_htons(p->outer.family == 6 ? ETH_P_IPV6 : ETH_P_IP);
	__u64 fl = BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
		   (p->outer.family == 6 ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 : BPF_F_ADJ_ROOM_ENCAP_L3_IPV4);
	struct outer_save *s;
	int err;

	/* Keep the bounds check and the helper's length in one register: the
	 * verifier must see hl in [1, MAX_SAVE] where it is passed. */
	asm volatile("" : "+r"(hl));
	if (hl == 0 || hl > MAX_SAVE)
		goto unchanged;
	s = bpf_map_lookup_elem(&scratch, &zero);
	if (!s || bpf_skb_load_bytes(skb, ETH_HLEN, s->b, hl) < 0)
		goto unchanged;
	err = decap(skb, p);
	if (err > 0)
		goto unchanged;
	if (err < 0)
		goto broken;
	if (clone_to(skb, ifindex, dmac, at))
		return TC_ACT_SHOT; /* counted there */
	if (bpf_skb_adjust_room(skb, hl, BPF_ADJ_ROOM_MAC, fl) ||
	    bpf_skb_store_bytes(skb, ETH_HLEN, s->b, hl, 0) || bpf_skb_store_bytes(skb, 12, &et, 2, 0))
		goto broken;
	return TC_ACT_OK;
unchanged:
	stat_inc(STAT_STEER_FAIL);
	return TC_ACT_OK;
broken:
	/* Neither the copy's nor the original's headers are whole: dropping
	 * beats sending a mangled frame either way. */
	stat_inc(STAT_STEER_FAIL);
	return TC_ACT_SHOT;
}

/* steer carries out a matched entry's action. ifindex 0 on a steering action
 * keeps the old contract: TC_ACT_OK with the mark for a later stage. A packet
 * that is not a G-PDU is already "decapsulated": *_DECAPSULATED sends it as
 * it is. What reaches the app (the packet, or the copy) is addressed to dmac
 * when it is set; a duplicated original goes on byte for byte as it came. */
static __always_inline int steer(struct __sk_buff *skb, const struct pkt *p, __u32 action, __u32 ifindex,
				 const __u8 *dmac, __u8 set_dscp)
{
	struct ipat outer = {.off = ETH_HLEN + (p->vlan ? 4 : 0), .family = p->outer.family, .set_dscp = set_dscp};
	struct ipat inner = {.off = ETH_HLEN, .family = p->inner.family, .set_dscp = set_dscp};
	int err;

	if (action == ACT_DROP)
		return TC_ACT_SHOT;
	if (action == ACT_PASSTHROUGH || !ifindex) {
		remark(skb, outer.off, outer.family, set_dscp);
		return TC_ACT_OK;
	}
	switch (action) {
	case ACT_FORWARD_ENCAPSULATED:
		return forward(skb, ifindex, dmac, outer);
	case ACT_FORWARD_DECAPSULATED:
		if (!p->gtpu)
			return forward(skb, ifindex, dmac, outer);
		err = decap(skb, p);
		if (err) {
			/* Not decapsulated: let it go on its way rather than hand
			 * the app a tunnel it did not ask for. */
			stat_inc(STAT_STEER_FAIL);
			return err > 0 ? TC_ACT_OK : TC_ACT_SHOT;
		}
		/* Outer Ethernet padding would trail the inner packet. */
		if (p->inner.l4_end - p->inner_off + ETH_HLEN < skb->len &&
		    bpf_skb_change_tail(skb, p->inner.l4_end - p->inner_off + ETH_HLEN, 0))
			stat_inc(STAT_STEER_FAIL); /* the receiver trims by IP length anyway */
		return forward(skb, ifindex, dmac, inner);
	case ACT_DUPLICATE_DECAPSULATED:
		if (p->gtpu)
			return dup_decap(skb, p, ifindex, dmac, set_dscp);
		/* Not a G-PDU: the copy is the packet as it is. */
		return clone_to(skb, ifindex, dmac, outer) ? TC_ACT_SHOT : TC_ACT_OK;
	case ACT_DUPLICATE_ENCAPSULATED:
		return clone_to(skb, ifindex, dmac, outer) ? TC_ACT_SHOT : TC_ACT_OK;
	}
	return TC_ACT_OK;
}

#endif

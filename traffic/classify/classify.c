//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/* MEC 011 traffic-filter classification at tc: parse the packet once (outer
 * IP/L4, GTP-U G-PDU with its extension headers, inner IP/L4), then walk the
 * rule entries of the active slot in priority order; the first match decides.
 * A second program, learn, runs the same parser to record UE paths from
 * downlink G-PDUs and never touches the packet.
 * Header reads go through bpf_skb_load_bytes so that every variable offset
 * (IPv6 extension headers, GTP-U extensions) is bounds-checked by the helper
 * instead of by hand-proved packet-pointer arithmetic. */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "classify.h"

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define GTPU_PORT 2152
#define GTP_TYPE_GPDU 255
#define GTP_EXT_PDU_SESSION 0x85
/* Bounds that keep the parsers' loops small for the verifier; a packet that
 * needs more is treated as malformed (its L4/inner fields stay unknown). */
#define MAX_IPV6_EXT 6
#define MAX_GTP_EXT 4
/* tcx's "no verdict, run the next program (or the stack)": TCX_NEXT, which
 * the 6.1 UAPI headers lack; TC_ACT_UNSPEC is the same -1. Own name, so a
 * newer header's enum member TCX_NEXT cannot clash with a macro. */
#define VERDICT_NEXT TC_ACT_UNSPEC

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct rule_entry);
} rules SEC(".maps");

/* Per-rule (not per-entry) counters, indexed like rules: slot*MAX + rule_no. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct counter);
} counters SEC(".maps");

/* One u32: bit 31 is the active slot, the low bits its entry count. Written
 * last by Apply, so a packet sees either the old set or the new one whole. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} active SEC(".maps");

/* What the parser learnt about one IP header and its L4 header. */
struct tuple {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport, dport;
	__u8 family; /* 0: no IP header parsed */
	__u8 proto;
	__u8 tos;
	__u8 proto_ok; /* protocol known (L4 header reached or not, see ports_ok) */
	__u8 ports_ok; /* TCP/UDP/SCTP ports read from a first (or only) fragment */
	__u8 pad[3];
	__u32 l4_off; /* offset of the L4 header when proto_ok */
	__u32 l4_end; /* end of this IP packet (from its length field) */
};

struct pkt {
	struct tuple outer;
	struct tuple inner;
	__u32 teid;
	__u32 inner_off; /* offset of the inner IP header when gtpu */
	__u8 gtpu; /* a well-formed G-PDU carrying an inner IP packet */
	__u8 qfi_ok;
	__u8 qfi;
	__u8 pdu_type; /* PDU session container type: 0 DL, 1 UL (when qfi_ok) */
	__u8 vlan;     /* the frame carries a VLAN tag */
	__u8 pad[3];
};

struct walk {
	struct pkt p;
	__u32 base;
	__u32 hit; /* entry index + 1, 0 for none */
};

#include "steer.h"

/* parse_ip fills t from the IP header at off; end bounds the packet (skb
 * length, or the GTP-U payload end for an inner packet). */
static __always_inline void parse_ip(struct __sk_buff *skb, __u32 off, __u32 end, struct tuple *t)
{
	__u8 b[40];
	int nonfirst = 0;

	if (off + 20 > end || bpf_skb_load_bytes(skb, off, b, 20) < 0)
		return;
	if ((b[0] >> 4) == 4) {
		__u32 ihl = (b[0] & 0x0f) * 4;
		__u32 tot = ((__u32)b[2] << 8) | b[3];
		__u16 frag = ((__u16)b[6] << 8) | b[7];

		if (ihl < 20 || tot < ihl || off + tot > end)
			return;
		t->family = 4;
		t->tos = b[1];
		t->proto = b[9];
		__builtin_memcpy(&t->src[0], &b[12], 4);
		__builtin_memcpy(&t->dst[0], &b[16], 4);
		t->proto_ok = 1;
		nonfirst = (frag & 0x1fff) != 0;
		t->l4_off = off + ihl;
		t->l4_end = off + tot;
	} else if ((b[0] >> 4) == 6) {
		__u32 plen;
		__u8 nh;

		if (off + 40 > end || bpf_skb_load_bytes(skb, off, b, 40) < 0)
			return;
		plen = ((__u32)b[4] << 8) | b[5];
		if (off + 40 + plen > end)
			return;
		t->family = 6;
		t->tos = (b[0] << 4) | (b[1] >> 4);
		__builtin_memcpy(t->src, &b[8], 16);
		__builtin_memcpy(t->dst, &b[24], 16);
		t->l4_end = off + 40 + plen;
		nh = b[6];
		off += 40;
		for (int i = 0; i < MAX_IPV6_EXT; i++) {
			__u8 e[4];

			if (nh != 0 && nh != 43 && nh != 60 && nh != 44 && nh != 51)
				break;
			if (off + 8 > t->l4_end || bpf_skb_load_bytes(skb, off, e, 4) < 0)
				return; /* truncated chain: protocol stays unknown */
			if (nh == 44) {
				/* Fragment header: a non-first fragment has no L4 header. */
				nonfirst |= ((((__u16)e[2] << 8) | e[3]) & 0xfff8) != 0;
				off += 8;
			} else if (nh == 51) {
				off += ((__u32)e[1] + 2) * 4;
			} else {
				off += ((__u32)e[1] + 1) * 8;
			}
			nh = e[0];
		}
		if (nh == 0 || nh == 43 || nh == 60 || nh == 44 || nh == 51)
			return; /* more extension headers than we walk: malformed for us */
		t->proto = nh;
		t->proto_ok = 1;
		t->l4_off = off;
	} else {
		return;
	}

	/* TCP, UDP and SCTP (132) all open with source and destination port;
	 * their headers are 20, 8 and 12 octets (SCTP's common header). */
	if (nonfirst || (t->proto != 6 && t->proto != 17 && t->proto != 132))
		return;
	if (t->l4_off + (t->proto == 6 ? 20 : t->proto == 17 ? 8 : 12) > t->l4_end)
		return; /* L4 header truncated: ports stay unknown */
	if (bpf_skb_load_bytes(skb, t->l4_off, b, 4) < 0)
		return;
	t->sport = ((__u16)b[0] << 8) | b[1];
	t->dport = ((__u16)b[2] << 8) | b[3];
	t->ports_ok = 1;
}

/* parse_gtpu reads a G-PDU (TS 29.281) from the UDP payload at off and, when
 * it is well formed, the inner IP packet. Anything else leaves p->gtpu 0. */
static __always_inline void parse_gtpu(struct __sk_buff *skb, __u32 off, __u32 end, struct pkt *p)
{
	__u8 h[8];
	__u8 flags, next = 0;
	__u32 glen, gend;

	if (off + 8 > end || bpf_skb_load_bytes(skb, off, h, 8) < 0)
		return;
	flags = h[0];
	/* Version 1, protocol type GTP (not GTP'), message type G-PDU. */
	if ((flags >> 5) != 1 || !(flags & 0x10) || h[1] != GTP_TYPE_GPDU)
		return;
	glen = ((__u32)h[2] << 8) | h[3];
	gend = off + 8 + glen;
	if (gend > end)
		return; /* length field claims more than the datagram holds */
	p->teid = ((__u32)h[4] << 24) | ((__u32)h[5] << 16) | ((__u32)h[6] << 8) | h[7];
	off += 8;
	if (flags & 0x07) {
		/* E, S or PN set: sequence, N-PDU and next-extension fields follow. */
		if (off + 4 > gend || bpf_skb_load_bytes(skb, off, h, 4) < 0)
			return;
		if (flags & 0x04) /* the next-extension type counts only with E */
			next = h[3];
		off += 4;
	}
	for (int i = 0; i < MAX_GTP_EXT && next; i++) {
		__u32 elen;

		/* Extension: length in 4-octet units (incl. itself and the trailing
		 * next-type octet), content, next type. Zero length is malformed. */
		if (off + 4 > gend || bpf_skb_load_bytes(skb, off, h, 4) < 0)
			return;
		elen = (__u32)h[0] * 4;
		if (elen == 0 || off + elen > gend)
			return;
		if (next == GTP_EXT_PDU_SESSION) {
			/* TS 38.415: the QFI is the low 6 bits of the second content
			 * octet for both DL (type 0) and UL (type 1) PDU session info. */
			__u8 type = h[1] >> 4;

			if (type <= 1) {
				p->qfi = h[2] & 0x3f;
				p->qfi_ok = 1;
				p->pdu_type = type;
			}
		}
		if (bpf_skb_load_bytes(skb, off + elen - 1, &next, 1) < 0)
			return;
		off += elen;
	}
	if (next)
		return; /* more extensions than we walk: the inner packet is unknown */
	p->gtpu = 1;
	p->inner_off = off;
	parse_ip(skb, off, gend, &p->inner);
	if (!p->inner.family)
		p->gtpu = 0; /* a G-PDU without a parseable inner IP packet */
}

static __always_inline int addr_match(const __u32 *a, const __u32 *val, const __u32 *mask)
{
	return ((a[0] & mask[0]) == val[0]) && ((a[1] & mask[1]) == val[1]) &&
	       ((a[2] & mask[2]) == val[2]) && ((a[3] & mask[3]) == val[3]);
}

/* tuple_match checks the constraints named by bits (shifted to the outer or
 * inner group) against what the parser found. */
static __always_inline int tuple_ok(__u32 f, const struct tuple_match *m, const struct tuple *t,
				    __u32 fam, __u32 src, __u32 dst, __u32 sport, __u32 dport,
				    __u32 proto, __u32 tos)
{
	if ((f & (fam | src | dst | sport | dport | proto | tos)) && !t->family)
		return 0;
	if ((f & fam) && t->family != m->family)
		return 0;
	if ((f & src) && !addr_match(t->src, m->src, m->src_mask))
		return 0;
	if ((f & dst) && !addr_match(t->dst, m->dst, m->dst_mask))
		return 0;
	if ((f & proto) && (!t->proto_ok || !(m->proto_bits[(t->proto >> 5) & 7] & (1u << (t->proto & 31)))))
		return 0;
	if ((f & (sport | dport)) && !t->ports_ok)
		return 0;
	if ((f & sport) && (t->sport < m->sport_lo || t->sport > m->sport_hi))
		return 0;
	if ((f & dport) && (t->dport < m->dport_lo || t->dport > m->dport_hi))
		return 0;
	if ((f & tos) && (t->tos & m->tos_mask) != m->tos_val)
		return 0;
	return 1;
}

static long match_one(__u32 i, void *ctx)
{
	struct walk *w = ctx;
	struct pkt *p = &w->p;
	__u32 key = w->base + i;
	struct rule_entry *r = bpf_map_lookup_elem(&rules, &key);
	__u32 f;

	if (!r)
		return 1;
	f = r->fields;
	if ((f & (F_GTPU | F_TEID | F_QFI | F_I_FAMILY | F_I_SRC | F_I_DST | F_I_SPORT | F_I_DPORT |
		  F_I_PROTO | F_I_TOS)) && !p->gtpu)
		return 0;
	if ((f & F_TEID) && p->teid != r->teid)
		return 0;
	if ((f & F_QFI) && (!p->qfi_ok || p->qfi != r->qfi))
		return 0;
	if (!tuple_ok(f, &r->outer, &p->outer, F_O_FAMILY, F_O_SRC, F_O_DST, F_O_SPORT, F_O_DPORT,
		      F_O_PROTO, F_O_TOS))
		return 0;
	if (!tuple_ok(f, &r->inner, &p->inner, F_I_FAMILY, F_I_SRC, F_I_DST, F_I_SPORT, F_I_DPORT,
		      F_I_PROTO, F_I_TOS))
		return 0;
	w->hit = i + 1;
	return 1;
}

/* parse fills p from the frame: Ethernet (one VLAN tag), outer IP and L4,
 * and for UDP to the GTP-U port the G-PDU and its inner packet. */
static __always_inline void parse(struct __sk_buff *skb, struct pkt *p)
{
	__u32 off = ETH_HLEN;
	__u16 proto;
	__u8 eth[2];

	if (bpf_skb_load_bytes(skb, 12, eth, 2) < 0)
		return;
	proto = ((__u16)eth[0] << 8) | eth[1];
	if (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
		/* One VLAN tag: access ports towards the RAN often carry one. */
		if (bpf_skb_load_bytes(skb, 16, eth, 2) < 0)
			return;
		proto = ((__u16)eth[0] << 8) | eth[1];
		off += 4;
		p->vlan = 1;
	}
	if (proto == ETH_P_IP || proto == ETH_P_IPV6)
		parse_ip(skb, off, skb->len, &p->outer);
	if (p->outer.ports_ok && p->outer.proto == 17 && p->outer.dport == GTPU_PORT)
		parse_gtpu(skb, p->outer.l4_off + 8, p->outer.l4_end, p);
}

/* classify does not learn: it faces the RAN, and a UE there must not be able
 * to rewrite where other UEs' return traffic goes. No match is no verdict:
 * the mark stays as it came and the next tcx program (or the stack) decides. */
SEC("tc")
int classify(struct __sk_buff *skb)
{
	struct walk w = {};
	struct pkt *p = &w.p;
	__u32 zero = 0, *st, n, slot, key;
	struct rule_entry *r;
	struct counter *c;

	parse(skb, p);
	st = bpf_map_lookup_elem(&active, &zero);
	if (!st)
		return VERDICT_NEXT;
	slot = *st >> 31;
	n = *st & 0x7fffffff;
	if (n > MAX_ENTRIES)
		n = MAX_ENTRIES;
	w.base = slot * MAX_ENTRIES;
	if (n)
		bpf_loop(n, match_one, &w, 0);
	if (!w.hit)
		return VERDICT_NEXT;

	key = w.base + w.hit - 1;
	r = bpf_map_lookup_elem(&rules, &key);
	if (!r)
		return VERDICT_NEXT;
	key = w.base + (r->rule_no < MAX_ENTRIES ? r->rule_no : 0);
	c = bpf_map_lookup_elem(&counters, &key);
	if (c) {
		c->packets++;
		c->bytes += skb->len;
	}
	skb->mark = r->rule_no + 1;
	return steer(skb, p, r->action, r->ifindex, r->dmac, r->set_dscp);
}

/* learn records UE paths from downlink G-PDUs (with CFG_LEARN) and nothing
 * else: it never changes the packet and always hands it on, so it can sit
 * in front of classify or any other tcx program on the core-facing side. */
SEC("tc")
int learn(struct __sk_buff *skb)
{
	struct pkt p = {};

	parse(skb, &p);
	learn_ue(&p);
	return VERDICT_NEXT;
}

#include "return_path.h"

char LICENSE[] SEC("license") = "GPL";

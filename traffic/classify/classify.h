/* Shared layout of the classifier's maps. The Go side mirrors these structs
 * through bpf2go, so every field is explicitly sized and padded: a hidden
 * compiler hole would silently shift fields between C and Go. */
#ifndef MECORCH_CLASSIFY_H
#define MECORCH_CLASSIFY_H

#include <linux/types.h>

/* One rule set holds at most this many expanded entries; the rules map holds
 * two sets (slot 0 and slot 1) so a new set is written beside the running one
 * and the switch is one 4-byte store. */
#define MAX_ENTRIES 10000

/* Bits of rule_entry.fields: which constraints an entry carries. A packet
 * that lacks a constrained field (truncated, non-first fragment, not GTP-U)
 * never matches the entry. */
#define F_O_FAMILY (1u << 0)
#define F_O_SRC (1u << 1)
#define F_O_DST (1u << 2)
#define F_O_SPORT (1u << 3)
#define F_O_DPORT (1u << 4)
#define F_O_PROTO (1u << 5)
#define F_O_TOS (1u << 6)
#define F_GTPU (1u << 7)
#define F_TEID (1u << 8)
#define F_QFI (1u << 9)
#define F_I_FAMILY (1u << 10)
#define F_I_SRC (1u << 11)
#define F_I_DST (1u << 12)
#define F_I_SPORT (1u << 13)
#define F_I_DPORT (1u << 14)
#define F_I_PROTO (1u << 15)
#define F_I_TOS (1u << 16)

/* Action codes, kept in the entry so the verdict needs no second lookup. */
#define ACT_DROP 1
#define ACT_PASSTHROUGH 2
#define ACT_FORWARD_DECAPSULATED 3
#define ACT_FORWARD_ENCAPSULATED 4
#define ACT_DUPLICATE_DECAPSULATED 5
#define ACT_DUPLICATE_ENCAPSULATED 6

/* Constraints on one IP header and the L4 header behind it. Addresses are
 * stored pre-masked with their mask (IPv4 in the first 4 bytes, the rest
 * zero) so matching is four AND+compare, no prefix-length arithmetic. */
struct tuple_match {
	__u32 src[4];
	__u32 src_mask[4];
	__u32 dst[4];
	__u32 dst_mask[4];
	__u32 proto_bits[8]; /* bitmap of accepted IP protocol numbers */
	__u16 sport_lo, sport_hi;
	__u16 dport_lo, dport_hi;
	__u8 family; /* 4 or 6 */
	__u8 tos_val, tos_mask;
	__u8 pad;
};

struct rule_entry {
	__u32 fields;
	__u32 action;
	__u32 rule_no; /* position of the rule in priority order; mark = rule_no + 1 */
	__u32 teid;
	__u8 qfi;
	/* 1 + the DSCP to give what reaches the app (the packet, or the copy)
	 * or, for PASSTHROUGH, the packet going on; 0 keeps the DSCP. */
	__u8 set_dscp;
	__u8 pad[2];
	/* Where FORWARD_* and DUPLICATE_* send the packet (the app instance's
	 * interface); 0 leaves steering to a later stage (mark only). Kept in
	 * the entry so the verdict still needs one lookup. */
	__u32 ifindex;
	/* Ethernet destination the app's packet (a FORWARD_* packet, a
	 * DUPLICATE_* copy) gets before the redirect: the app's own MAC. All
	 * zero keeps the RAN-side one, which the app's stack would drop as
	 * addressed to another host. */
	__u8 dmac[6];
	__u8 pad2[2];
	struct tuple_match outer;
	struct tuple_match inner;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

/* UE map key: the UE's address, IPv4 as v4-mapped IPv6 (::ffff:a.b.c.d), so
 * one hash map serves both families. */
struct ue_key {
	__u8 addr[16];
};

/* How to reach a UE through the RAN: the downlink tunnel the gNB set up.
 * Addresses in network byte order (as on the wire). */
struct ue_path {
	__u8 gnb[4];    /* outer destination: the gNB's N3 address */
	__u8 source[4]; /* outer source: the UPF/N3 address the gNB expects */
	__u32 teid;     /* downlink TEID, host order */
	__u8 qfi;
	__u8 pad[3];
};

/* Bits of config.flags. */
#define CFG_LEARN (1u << 0) /* the learn program records UE paths from downlink G-PDUs */
#define CFG_UE_NETS (1u << 1) /* return path: only destinations in ue_nets are UEs */
#define CFG_ROUTE (1u << 2) /* return path without an uplink: route by a FIB lookup, redirect there */

/* ue_nets key: an LPM prefix over ue_key's address (IPv4 v4-mapped, so an
 * IPv4 /n is 96+n bits). */
struct ue_net {
	__u32 prefixlen;
	__u8 addr[16];
};

struct config {
	__u32 flags;
	/* Interface towards the RAN for encapsulated return traffic: 0 passes the
	 * packet on (TC_ACT_OK) for the kernel to route, else bpf_redirect_neigh. */
	__u32 uplink_ifindex;
	/* MTU of the uplink: an encapsulated packet longer than this is dropped
	 * (STAT_TOO_BIG) rather than fragmented or refused further on; 0: no
	 * check. */
	__u32 uplink_mtu;
};

/* Indexes of the per-CPU stats array. */
#define STAT_UNKNOWN_UE 0 /* return path: no UE path, dropped */
#define STAT_STEER_FAIL 1 /* decap/redirect/clone failed: packet not steered */
#define STAT_ENCAP_FAIL 2 /* return path: encapsulation failed, dropped */
#define STAT_LEARNED 3    /* UE map writes from downlink G-PDUs */
#define STAT_TOO_BIG 4    /* return path: GSO or over the uplink MTU once encapsulated, dropped */
#define STAT_MAX 5        /* the stats map's size: one past the last index */

#endif

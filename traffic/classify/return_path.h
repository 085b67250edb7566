/* The return path: traffic from an app instance towards a UE leaves the edge
 * inside the UE's downlink GTP-U tunnel, as if the UPF had sent it. Attached
 * on the app-facing interface (ingress of the host side of the app's veth).
 * Included by classify.c: it shares the ues, config and stats maps. */
#ifndef MECORCH_RETURN_PATH_H
#define MECORCH_RETURN_PATH_H

/* Outer IPv4 (20) + UDP (8) + GTP-U (8) + seq/N-PDU/next-ext (4) + PDU
 * Session Container (4). */
#define ENCAP_LEN 44

/* BPF_FIB_LOOKUP_SKIP_NEIGH arrived in Linux 6.3, after Debian's UAPI
 * headers: own name, as for the adjust_room flags. */
#define FIB_LOOKUP_SKIP_NEIGH (1U << 2)
#define AF_INET 2

/* route sends an encapsulated packet where the routing table says the gNB
 * is: out of the RAN-facing interface for this site's gNBs, across the
 * backhaul for another site's (an instance serving a UE of another site
 * over the overlay). The lookup is the one forwarding does (ingress, from
 * the app's veth, which therefore needs forwarding on); the neighbour
 * subsystem fills in the MACs. No route: dropped and counted, never sent
 * raw. */
static __always_inline int route(struct __sk_buff *skb, const struct ue_path *ue)
{
	struct bpf_fib_lookup fib = {};
	struct bpf_redir_neigh nh = {};
	long rc;

	fib.family = AF_INET;
	fib.l4_protocol = 17;
	fib.sport = bpf_htons(GTPU_PORT);
	fib.dport = bpf_htons(GTPU_PORT);
	fib.ifindex = skb->ifindex;
	__builtin_memcpy(&fib.ipv4_src, ue->source, 4);
	__builtin_memcpy(&fib.ipv4_dst, ue->gnb, 4);
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), FIB_LOOKUP_SKIP_NEIGH);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		stat_inc(STAT_ENCAP_FAIL);
		return TC_ACT_SHOT;
	}
	nh.nh_family = AF_INET;
	nh.ipv4_nh = fib.ipv4_dst; /* the gateway, or the gNB itself when on link */
	return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
}

SEC("tc")
int return_path(struct __sk_buff *skb)
{
	__u8 h[40], o[ENCAP_LEN] = {};
	struct ue_key k = {};
	struct ue_path ue, *u;
	struct config *cfg;
	__u32 zero = 0, ilen, sum = 0;
	__u16 et;
	__u8 tos;

	if (bpf_skb_load_bytes(skb, 12, h, 2) < 0)
		return TC_ACT_OK; /* not even Ethernet: nothing the stack will route */
	et = ((__u16)h[0] << 8) | h[1];
	if (et == ETH_P_IP) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, h, 20) < 0 || (h[0] >> 4) != 4)
			goto fail;
		/* Multicast and broadcast stay on the link (DHCP, IGMP): no UE
		 * is behind them. */
		if (h[16] >= 224)
			return TC_ACT_OK;
		ilen = ((__u32)h[2] << 8) | h[3];
		tos = h[1];
		k.addr[10] = 0xff;
		k.addr[11] = 0xff;
		__builtin_memcpy(&k.addr[12], &h[16], 4);
	} else if (et == ETH_P_IPV6) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, h, 40) < 0 || (h[0] >> 4) != 6)
			goto fail;
		/* Multicast and link-local (neighbour discovery with the host)
		 * stay on the link. */
		if (h[24] == 0xff || (h[24] == 0xfe && (h[25] & 0xc0) == 0x80))
			return TC_ACT_OK;
		ilen = 40 + (((__u32)h[4] << 8) | h[5]);
		tos = (h[0] << 4) | (h[1] >> 4);
		__builtin_memcpy(k.addr, &h[24], 16);
	} else if (et == ETH_P_8021Q || et == ETH_P_8021AD) {
		goto fail; /* an app does not tag; passing it would send it raw */
	} else {
		return TC_ACT_OK; /* ARP and other link traffic */
	}

	cfg = bpf_map_lookup_elem(&settings, &zero);
	if (cfg && (cfg->flags & CFG_UE_NETS)) {
		struct ue_net n = {.prefixlen = 128};

		__builtin_memcpy(n.addr, k.addr, 16);
		if (!bpf_map_lookup_elem(&ue_nets, &n))
			return TC_ACT_OK; /* not UE traffic: the kernel routes it */
	}
	u = bpf_map_lookup_elem(&ues, &k);
	if (!u) {
		stat_inc(STAT_UNKNOWN_UE);
		return TC_ACT_SHOT;
	}
	ue = *u;
	if (ilen < 20 || ilen > 0xffff - ENCAP_LEN || ETH_HLEN + ilen > skb->len)
		goto fail;
	/* A GSO super-packet would be segmented behind our back with the outer
	 * IP and UDP lengths fixed per segment but the GTP-U length still the
	 * whole's: every segment would reach the gNB malformed. And a packet
	 * over the uplink MTU once encapsulated would be fragmented (outer DF is
	 * clear) or dropped further on. The agent sizes the app's MTU and GSO
	 * so neither happens; when it does, drop it here, counted, so it shows.
	 * A GSO packet whose segment count is not computed yet (gso_segs 0, as
	 * from a tap/virtio sender) counts as a super-packet: such senders set
	 * GSO only for more than one segment. */
	if (skb->gso_segs > 1 || (skb->gso_size && !skb->gso_segs) ||
	    (cfg && cfg->uplink_mtu && ilen + ENCAP_LEN > cfg->uplink_mtu)) {
		stat_inc(STAT_TOO_BIG);
		return TC_ACT_SHOT;
	}
	/* Ethernet padding would otherwise land inside the tunnel. */
	if (ETH_HLEN + ilen < skb->len && bpf_skb_change_tail(skb, ETH_HLEN + ilen, 0))
		goto fail;

	/* IPv4: the inner DSCP is copied so the transport network can honour
	 * it; DF clear so an oversized packet is fragmented, not lost. */
	o[0] = 0x45;
	o[1] = tos;
	o[2] = (ilen + ENCAP_LEN) >> 8;
	o[3] = (ilen + ENCAP_LEN) & 0xff;
	o[8] = 64;
	o[9] = 17;
	__builtin_memcpy(&o[12], ue.source, 4);
	__builtin_memcpy(&o[16], ue.gnb, 4);
	for (int i = 0; i < 20; i += 2)
		sum += ((__u32)o[i] << 8) | o[i + 1];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = ~sum & 0xffff;
	o[10] = sum >> 8;
	o[11] = sum & 0xff;
	/* UDP 2152 -> 2152, checksum 0 (allowed over IPv4, TS 29.281 §4.4.2.0). */
	o[20] = GTPU_PORT >> 8;
	o[21] = GTPU_PORT & 0xff;
	o[22] = GTPU_PORT >> 8;
	o[23] = GTPU_PORT & 0xff;
	o[24] = (ilen + ENCAP_LEN - 20) >> 8;
	o[25] = (ilen + ENCAP_LEN - 20) & 0xff;
	/* GTP-U: version 1, PT 1, E set; G-PDU; length past the mandatory 8
	 * octets; TEID; seq 0, N-PDU 0, next extension: PDU Session Container. */
	o[28] = 0x34;
	o[29] = GTP_TYPE_GPDU;
	o[30] = (ilen + 8) >> 8;
	o[31] = (ilen + 8) & 0xff;
	o[32] = ue.teid >> 24;
	o[33] = ue.teid >> 16;
	o[34] = ue.teid >> 8;
	o[35] = ue.teid;
	o[39] = GTP_EXT_PDU_SESSION;
	/* TS 38.415 DL PDU SESSION INFORMATION: length 1 (4 octets), PDU type
	 * 0, no QMP/SNP; PPP/RQI clear, the QFI; no further extension. */
	o[40] = 1;
	o[42] = ue.qfi & 0x3f;

	if (bpf_skb_adjust_room(skb, ENCAP_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 | BPF_F_ADJ_ROOM_ENCAP_L4_UDP))
		goto fail;
	et = bpf_htons(ETH_P_IP);
	if (bpf_skb_store_bytes(skb, ETH_HLEN, o, ENCAP_LEN, 0) || bpf_skb_store_bytes(skb, 12, &et, 2, 0))
		goto fail;
	if (cfg && cfg->uplink_ifindex)
		/* The neighbour lookup fills in the MACs towards the gNB's next hop,
		 * which this program cannot know. */
		return bpf_redirect_neigh(cfg->uplink_ifindex, NULL, 0, 0);
	if (cfg && (cfg->flags & CFG_ROUTE))
		return route(skb, &ue);
	return TC_ACT_OK;
fail:
	stat_inc(STAT_ENCAP_FAIL);
	return TC_ACT_SHOT;
}

#endif

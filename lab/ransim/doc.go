// Package ransim simulates a 5G RAN and core user plane for the lab, so
// that UE traffic crosses the lab network as real GTP-U:
//
//	UE ──radio (UDP: raw IPv4 packets)──▶ gNB ──N3 (GTP-U, UDP 2152)──▶ UPF ──N6 (UDP)──▶ DN
//
// The UE sends IPv4/UDP packets from its address (which exists only
// inside those packets) to a data-network server, one per datagram to the
// radio socket of its serving gNB. The gNB wraps each in a G-PDU on the
// session's uplink TEID with a UL PDU Session Container carrying the QFI
// and sends it to the UPF. The UPF checks the TEID, the container and the
// inner source address, and forwards the inner UDP payload to the DN from
// a socket of its own, one per UE flow. The answer comes back into a real
// IPv4/UDP packet (DN → UE, both checksums) in a G-PDU on the session's
// downlink TEID with a DL PDU Session Container, to the gNB that last sent
// uplink traffic for the session; the gNB hands the inner packet to the UE
// over the radio socket. The UE matches answers to requests by sequence
// number and reports latency percentiles and loss as JSON lines.
//
// Sessions are provisioned statically, the same table on the gNBs and the
// UPF (see Session): a UE address, its uplink TEID (the UPF's), its
// downlink TEID (the gNB's) and QFI. The UPF learns where a session's
// downlink goes from the source address of its uplink G-PDUs: when that
// changes (the UE was handed over to another gNB and sent from there) the
// UPF switches the path and sends an End Marker to the old gNB, as a UPF
// does when the SMF modifies the session after an Xn handover. No
// signalling (NGAP, PFCP) is simulated; every gNB that may serve a UE
// holds its session.
//
// A handover is the UE switching the radio address it sends to, and
// reporting the cell change through a CellChangeReporter (for mecorch:
// POST /api/v1/ue_cell_changes).
//
// Every simulator opens its sockets in its New, so a test can open them
// inside a network namespace (netns.Do) and run them from any goroutine.
package ransim

package dns

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// handler answers one transport's queries; tcp decides the upstream transport and whether the
// answer must fit a UDP payload.
type handler struct {
	r   *Responder
	ctx context.Context
	tcp bool
}

func (h *handler) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	resp := h.answer(req)
	if !h.tcp {
		// Without EDNS a UDP answer must fit 512 bytes (RFC 1035 §4.2.1); Truncate drops records and sets
		// TC, and the client retries over TCP, where the full answer fits.
		size := mdns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = max(int(opt.UDPSize()), mdns.MinMsgSize)
		}
		resp.Truncate(size)
	}
	if err := w.WriteMsg(resp); err != nil {
		h.r.log.Debug("dns write answer", "client", w.RemoteAddr(), "err", err)
	}
}

// answer builds the response to req: local, forwarded, or an error code.
func (h *handler) answer(req *mdns.Msg) *mdns.Msg {
	r := h.r
	if req.Opcode != mdns.OpcodeQuery || len(req.Question) != 1 {
		// The accept func lets NOTIFY through; a resolver has nothing to do with it.
		r.refused.Add(1)
		return reply(req, mdns.RcodeNotImplemented)
	}
	if opt := req.IsEdns0(); opt != nil && opt.Version() != 0 {
		// RFC 6891 §6.1.3: only EDNS version 0 exists.
		r.refused.Add(1)
		resp := reply(req, mdns.RcodeBadVers)
		resp.SetEdns0(ednsSize, false)
		return resp
	}
	q := req.Question[0]
	if e, ok := r.rules.Load().lookup(q.Name); ok && q.Qclass == mdns.ClassINET {
		r.local.Add(1)
		return localAnswer(req, q, e)
	}
	if len(r.cfg.Upstream) == 0 {
		r.refused.Add(1)
		return reply(req, mdns.RcodeRefused)
	}
	resp, err := h.forward(req)
	if err != nil {
		r.upstreamFailures.Add(1)
		r.log.Warn("dns forward failed", "name", q.Name, "type", mdns.TypeToString[q.Qtype], "err", err)
		return reply(req, mdns.RcodeServerFailure)
	}
	r.forwarded.Add(1)
	return resp
}

// reply is an empty response with rcode, echoing the question and the client's EDNS presence.
func reply(req *mdns.Msg, rcode int) *mdns.Msg {
	resp := new(mdns.Msg)
	resp.SetRcode(req, rcode)
	resp.RecursionAvailable = true
	if opt := req.IsEdns0(); opt != nil && rcode != mdns.RcodeBadVers {
		resp.SetEdns0(ednsSize, opt.Do())
	}
	return resp
}

// localAnswer answers a query for a name a rule owns. A type the rule does not provide gets NODATA
// (NOERROR, empty answer), not NXDOMAIN and not the upstream's view: the name exists here, and
// forwarding, say, its HTTPS record would hand the UE address hints pointing away from the edge.
func localAnswer(req *mdns.Msg, q mdns.Question, e entry) *mdns.Msg {
	resp := reply(req, mdns.RcodeSuccess)
	// The rules are the authority for this name on this edge.
	resp.Authoritative = true
	// The owner name echoes the question as asked, so clients using 0x20 case randomisation accept it.
	if e.v4 != nil && (q.Qtype == mdns.TypeA || q.Qtype == mdns.TypeANY) {
		resp.Answer = append(resp.Answer, &mdns.A{
			Hdr: mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: e.v4.ttl},
			A:   net.IP(e.v4.addr.AsSlice()),
		})
	}
	if e.v6 != nil && (q.Qtype == mdns.TypeAAAA || q.Qtype == mdns.TypeANY) {
		resp.Answer = append(resp.Answer, &mdns.AAAA{
			Hdr:  mdns.RR_Header{Name: q.Name, Rrtype: mdns.TypeAAAA, Class: mdns.ClassINET, Ttl: e.v6.ttl},
			AAAA: net.IP(e.v6.addr.AsSlice()),
		})
	}
	return resp
}

// errNoAnswer is returned when upstreams answered only with SERVFAIL or REFUSED, or not at all.
var errNoAnswer = errors.New("no upstream answered")

// forward relays req to the upstreams in order, over the client's transport, and returns the first
// useful answer with the client's ID restored. The whole attempt is bounded by Config.Timeout; each
// upstream gets an equal share of what is left, so one silent resolver cannot starve the next.
func (h *handler) forward(req *mdns.Msg) (*mdns.Msg, error) {
	r := h.r
	out := req.Copy()
	// A fresh random ID upstream: the client's ID may be predictable, and the upstream path is where
	// spoofed answers would be injected.
	out.Id = mdns.Id()
	netw := "udp"
	if h.tcp {
		netw = "tcp"
	}
	ctx, cancel := context.WithTimeout(h.ctx, r.cfg.Timeout)
	defer cancel()
	deadline, _ := ctx.Deadline()
	var fallback *mdns.Msg
	err := errNoAnswer
	for i, up := range r.cfg.Upstream {
		share := time.Until(deadline) / time.Duration(len(r.cfg.Upstream)-i)
		if share <= 0 {
			break
		}
		actx, acancel := context.WithTimeout(ctx, share)
		// UDPSize only sizes our read buffer when the client sent no EDNS; a big buffer costs nothing
		// and lets an upstream's oversized reply through to our own truncation.
		c := &mdns.Client{Net: netw, Timeout: share, UDPSize: mdns.MaxMsgSize}
		resp, _, xerr := c.ExchangeContext(actx, out, up)
		acancel()
		if xerr != nil {
			err = xerr
			r.log.Debug("dns upstream", "upstream", up, "err", xerr)
			continue
		}
		if !sameQuestion(out, resp) {
			err = errors.New("upstream " + up + " answered another question")
			continue
		}
		resp.Id = req.Id
		if resp.Rcode == mdns.RcodeServerFailure || resp.Rcode == mdns.RcodeRefused {
			// Another upstream may do better; relay this one only if none does.
			fallback = resp
			continue
		}
		return resp, nil
	}
	if fallback != nil {
		return fallback, nil
	}
	return nil, err
}

func sameQuestion(req, resp *mdns.Msg) bool {
	if len(resp.Question) != 1 {
		return false
	}
	a, b := req.Question[0], resp.Question[0]
	return a.Qtype == b.Qtype && a.Qclass == b.Qclass && strings.EqualFold(a.Name, b.Name)
}

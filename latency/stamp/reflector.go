package stamp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"time"

	"github.com/mecorch/mecorch/latency"
)

// ReflectorConfig configures a Reflector.
type ReflectorConfig struct {
	// Listen is the UDP address to answer on; default ":862" (both IPv4
	// and IPv6).
	Listen string
	Logger *slog.Logger
	// SSIDs, if not empty, are the only sessions answered; others are
	// counted and dropped.
	SSIDs []uint16
	// UserStamps turns kernel receive stamps off (to compare).
	UserStamps bool
	// HardwareStamps uses the NIC's raw receive stamp when there is one.
	// Only right when the NIC's clock is kept on the system clock (e.g.
	// phc2sys): the transmit stamp is read from the system clock.
	HardwareStamps bool
}

// ReflectorCounters count what the reflector did.
type ReflectorCounters struct {
	Reflected uint64 `json:"reflected"`
	// Malformed: packets that were not test packets (too short, broken
	// TLVs).
	Malformed uint64 `json:"malformed"`
	// Filtered: test packets of a session not in the SSID filter.
	Filtered   uint64 `json:"filtered"`
	SendErrors uint64 `json:"sendErrors"`
	// Stamps by the source of the receive stamp used.
	HardwareRX uint64 `json:"hardwareRx"`
	KernelRX   uint64 `json:"kernelRx"`
	UserRX     uint64 `json:"userRx"`
}

// Reflector answers STAMP and TWAMP-light test packets, statelessly
// (RFC 8762 §4.3.1): its sequence number is the sender's.
type Reflector struct {
	cfg  ReflectorConfig
	log  *slog.Logger
	sock *udpSock

	reflected, malformed, filtered, sendErrors atomic.Uint64
	hwRX, kernelRX, userRX                     atomic.Uint64
}

// errorEstimate of the reflector's stamps: no external synchronization
// claimed, about 1 ms (2^-10 s). It only matters to one-way figures; the
// round trip uses differences of one clock.
func reflectorErrEst() ErrorEstimate { return ErrorEstimate{Scale: 22, Multiplier: 1} }

// NewReflector opens the reflector's socket.
func NewReflector(cfg ReflectorConfig) (*Reflector, error) {
	if cfg.Listen == "" {
		cfg.Listen = ":862"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sock, err := listenUDP(cfg.Listen, !cfg.UserStamps, false)
	if err != nil {
		return nil, fmt.Errorf("stamp reflector: %w", err)
	}
	r := &Reflector{cfg: cfg, log: log.With("component", "stamp-reflector"), sock: sock}
	r.log.Info("listening", "addr", sock.conn.LocalAddr(), "rxStamps", sock.rx)
	return r, nil
}

// Addr is the address the reflector listens on.
func (r *Reflector) Addr() net.Addr { return r.sock.conn.LocalAddr() }

// Counters returns a snapshot of the counters.
func (r *Reflector) Counters() ReflectorCounters {
	return ReflectorCounters{
		Reflected: r.reflected.Load(), Malformed: r.malformed.Load(), Filtered: r.filtered.Load(),
		SendErrors: r.sendErrors.Load(), HardwareRX: r.hwRX.Load(), KernelRX: r.kernelRX.Load(), UserRX: r.userRX.Load(),
	}
}

// Run answers until ctx ends, then closes the socket.
func (r *Reflector) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { r.sock.Close() })
	defer stop()
	defer r.sock.Close()
	buf := make([]byte, 65536)
	oob := make([]byte, 512)
	out := make([]byte, 0, 65536)
	for {
		info, err := r.sock.recv(buf, oob, false)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("stamp reflector: socket closed: %w", err)
			}
			r.log.Warn("receive", "err", err)
			continue
		}
		rx := info.best(r.cfg.HardwareStamps, time.Now())
		reply := r.reflect(out[:0], buf[:info.n], rx, info)
		if reply == nil {
			continue
		}
		// T3 is read just before sendmsg: a kernel transmit stamp exists
		// only once the packet has been handed to the stack, too late to
		// be written into that packet (that would take a NIC doing
		// one-step stamping). The user-space gap is small and one-sided.
		putTimestamp(reply, time.Now())
		if err := r.sock.send(reply, info.from, info.dst); err != nil {
			r.sendErrors.Add(1)
			r.log.Debug("send", "to", info.from, "err", err)
			continue
		}
		r.reflected.Add(1)
		switch rx.src {
		case latency.SourceHardware:
			r.hwRX.Add(1)
		case latency.SourceKernel:
			r.kernelRX.Add(1)
		default:
			r.userRX.Add(1)
		}
	}
}

// reflect builds the answer to in (received at rx) into out, leaving its
// Timestamp to be set at sending; nil when there is no answer.
func (r *Reflector) reflect(out, in []byte, rx stamp, info rxInfo) []byte {
	p, err := DecodeSender(in)
	if err != nil {
		r.malformed.Add(1)
		r.log.Debug("malformed test packet", "from", info.from, "err", err)
		return nil
	}
	if len(r.cfg.SSIDs) > 0 && !slices.Contains(r.cfg.SSIDs, p.SSID) {
		r.filtered.Add(1)
		return nil
	}
	ttl := uint8(255)
	if info.ttl >= 0 {
		ttl = uint8(info.ttl)
	}
	a := ReflectorPacket{
		Seq:                 p.Seq,
		ErrorEstimate:       reflectorErrEst(),
		SSID:                p.SSID,
		ReceiveTimestamp:    NTPTimestamp(rx.t),
		SenderSeq:           p.Seq,
		SenderTimestamp:     p.Timestamp,
		SenderErrorEstimate: p.ErrorEstimate,
		SenderTTL:           ttl,
	}
	if p.ErrorEstimate.PTP {
		// Answer in the sender's format (RFC 8762 §4.3: the reflector
		// may use either, and says which in Z).
		a.ErrorEstimate.PTP = true
		a.ReceiveTimestamp = PTPTimestamp(rx.t)
	}
	// Symmetric size (RFC 8762 §4.3): the answer is as long as the
	// probe, 44 octets at least (a TWAMP-light probe may be shorter).
	// The sender's TLVs come back with U set: this reflector knows none.
	out = out[:BaseSize]
	a.put(out)
	if len(in) > BaseSize {
		out = append(out, in[BaseSize:]...)
		off := BaseSize
		for _, t := range p.TLVs {
			out[off] |= TLVFlagU
			off += t.size()
		}
	}
	return out
}

// putTimestamp sets the reflector packet's Timestamp, in the format its
// Error Estimate says.
func putTimestamp(b []byte, t time.Time) {
	ts := NTPTimestamp(t)
	if b[offErrEst]&0x40 != 0 {
		ts = PTPTimestamp(t)
	}
	binary.BigEndian.PutUint64(b[offTS:], uint64(ts))
}

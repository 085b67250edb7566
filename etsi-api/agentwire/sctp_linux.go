//go:build linux

package agentwire

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/ishidawataru/sctp"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/mec/agentproto"
)

// ListenSCTP listens on port (0: any) at all of addrs, multi-homed: an
// agent's association may use every one of them. No addrs means every
// address of the host.
func ListenSCTP(addrs []netip.Addr, port int, opts ServerOptions) (Listener, error) {
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("listen sctp: port %d out of range", port)
	}
	addrs = unmapAll(addrs)
	if len(addrs) == 0 {
		addrs = []netip.Addr{netip.IPv6Unspecified()}
		if fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP); err == nil {
			_ = unix.Close(fd)
		} else if errors.Is(err, unix.EAFNOSUPPORT) {
			addrs = []netip.Addr{netip.IPv4Unspecified()}
		}
	}
	hb := opts.PathHeartbeat
	if hb <= 0 {
		hb = DefaultPathHeartbeat
	}
	fd, err := sctpSocket(addrs)
	if err != nil {
		return nil, fmt.Errorf("listen sctp: %w", err)
	}
	where := formatSCTPAddrs(addrs, port)
	err = setupSCTP(fd, hb)
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	}
	if err == nil {
		err = sctp.SCTPBind(fd, toSCTPAddr(addrs, port), sctp.SCTP_BINDX_ADD_ADDR)
	}
	if err == nil {
		err = unix.Listen(fd, 128)
	}
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("listen sctp on %s: %w", where, err)
	}
	if sa, err := unix.Getsockname(fd); err == nil {
		port = sockaddrPort(sa)
	}
	f := os.NewFile(uintptr(fd), "sctp-listener "+where)
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("listen sctp on %s: %w", where, err)
	}
	s := newSettings(opts.PingInterval, opts.PongWait, opts.WriteTimeout, opts.SendQueue)
	return &sctpListener{f: f, rc: rc, port: port, s: s, hb: hb, hz: kernelHZ()}, nil
}

type sctpListener struct {
	f    *os.File
	rc   syscall.RawConn
	port int
	s    settings
	hb   time.Duration
	hz   int
}

func (l *sctpListener) Accept() (Conn, error) {
	for {
		var nfd int
		var aerr error
		err := l.rc.Read(func(fd uintptr) bool {
			for {
				nfd, _, aerr = unix.Accept4(int(fd), unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
				if aerr != unix.EINTR {
					return aerr != unix.EAGAIN
				}
			}
		})
		if err != nil {
			return nil, fmt.Errorf("accept sctp: %w", err)
		}
		if errors.Is(aerr, unix.ECONNABORTED) {
			continue // the peer gave up before we got to it
		}
		if aerr != nil {
			return nil, fmt.Errorf("accept sctp: %w", aerr)
		}
		// The association inherits the listener's heartbeat; setting it
		// again also covers its paths added since.
		_ = setupSCTP(nfd, l.hb)
		c, err := newSCTPConn(nfd, l.s, l.hz)
		if err != nil {
			return nil, fmt.Errorf("accept sctp: %w", err)
		}
		return c, nil
	}
}

func (l *sctpListener) Close() error { return l.f.Close() }
func (l *sctpListener) Port() int    { return l.port }

// DialSCTP opens an association to mecorch at the addresses of rawURL (see
// parseSCTPURL for the forms), bound to all of localAddrs (none: the
// kernel's choice). The first frame must be the hello with the token.
func DialSCTP(ctx context.Context, rawURL string, localAddrs []netip.Addr, opts DialOptions) (Conn, error) {
	hosts, port, err := parseSCTPURL(rawURL)
	if err != nil {
		return nil, err
	}
	var remotes []netip.Addr
	for _, h := range hosts {
		as := []netip.Addr{}
		if a, err := netip.ParseAddr(h); err == nil {
			as = append(as, a)
		} else if as, err = net.DefaultResolver.LookupNetIP(ctx, "ip", h); err != nil {
			return nil, fmt.Errorf("dial sctp: resolve %s: %w", h, err)
		}
		for _, a := range unmapAll(as) {
			if !slices.Contains(remotes, a) {
				remotes = append(remotes, a)
			}
		}
	}
	target := formatSCTPAddrs(remotes, port)
	locals := unmapAll(localAddrs)
	hb := opts.PathHeartbeat
	if hb <= 0 {
		hb = DefaultPathHeartbeat
	}
	fd, err := sctpSocket(append(slices.Clone(locals), remotes...))
	if err != nil {
		return nil, fmt.Errorf("dial sctp %s: %w", target, err)
	}
	err = setupSCTP(fd, hb) // the socket's defaults become the association's
	if err == nil && len(locals) > 0 {
		err = sctp.SCTPBind(fd, toSCTPAddr(locals, 0), sctp.SCTP_BINDX_ADD_ADDR)
	}
	if err == nil {
		err = connectSCTP(ctx, fd, toSCTPAddr(remotes, port), opts.HandshakeTimeout)
	}
	if err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("dial sctp %s: %w", target, err)
	}
	s := newSettings(opts.PingInterval, opts.PongWait, opts.WriteTimeout, opts.SendQueue)
	return newSCTPConn(fd, s, kernelHZ())
}

// connectSCTP connects the non-blocking fd to every address of raddr and
// waits until the association is up, ctx ends or the timeout passes.
func connectSCTP(ctx context.Context, fd int, raddr *sctp.SCTPAddr, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = defaultHandshake
	}
	deadline := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok {
		deadline = d
	}
	if _, err := sctp.SCTPConnect(fd, raddr); err != nil && !errors.Is(err, unix.EINPROGRESS) {
		return fmt.Errorf("connect: %w", err)
	}
	// Polled rather than left to the runtime's poller: an SCTP socket in
	// COOKIE-WAIT may already poll writable, so readiness alone does not
	// say the association is up.
	for {
		soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		if soerr != 0 {
			return fmt.Errorf("connect: %w", unix.Errno(soerr))
		}
		if _, err := unix.Getpeername(fd); err == nil {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("connect: no association within %s: %w", timeout, os.ErrDeadlineExceeded)
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if n, _ := unix.Poll(pfd, 20); n > 0 {
			time.Sleep(5 * time.Millisecond) // writable but maybe not up yet: do not spin
		}
	}
}

// sctpSocket opens a non-blocking one-to-one SCTP socket of the family
// that can hold addrs (IPv6 if any of them is, the IPv4 ones then travel
// as such: the socket is not IPv6-only).
func sctpSocket(addrs []netip.Addr) (int, error) {
	family := unix.AF_INET
	for _, a := range addrs {
		if !a.Is4() {
			family = unix.AF_INET6
		}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_SCTP)
	if errors.Is(err, unix.EPROTONOSUPPORT) {
		return -1, fmt.Errorf("socket: %w (this kernel has no SCTP: load the sctp module or use a websocket URL)", err)
	}
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	return fd, nil
}

// setupSCTP sets what every socket of ours needs: no bundling delay for
// small frames, and heartbeats on every path at the given interval.
func setupSCTP(fd int, heartbeat time.Duration) error {
	if err := unix.SetsockoptInt(fd, sctp.SOL_SCTP, sctp.SCTP_NODELAY, 1); err != nil {
		return fmt.Errorf("SCTP_NODELAY: %w", err)
	}
	b := paddrParams(heartbeat)
	err := unix.SetsockoptString(fd, sctp.SOL_SCTP, sctp.SCTP_PEER_ADDR_PARAMS, string(b[:]))
	if errors.Is(err, unix.EINVAL) { // kernels before 4.17 take the struct without flow label and DSCP
		err = unix.SetsockoptString(fd, sctp.SOL_SCTP, sctp.SCTP_PEER_ADDR_PARAMS, string(b[:paddrParamsOldSize]))
	}
	if err != nil {
		return fmt.Errorf("SCTP_PEER_ADDR_PARAMS heartbeat %s: %w", heartbeat, err)
	}
	return nil
}

// sctpTransport is one association, read and written through the
// runtime's poller so that deadlines and Close work as on any socket.
type sctpTransport struct {
	f      *os.File
	rc     syscall.RawConn
	remote string
	hz     int

	pending []byte // received, not yet consumed (reader goroutine only)
	scratch []byte
}

func newSCTPConn(fd int, s settings, hz int) (Conn, error) {
	remote := "sctp peer"
	if peers, err := sctpAddrs(fd, sctp.SCTP_GET_PEER_ADDRS); err == nil && len(peers) > 0 {
		port := 0
		if sa, err := unix.Getpeername(fd); err == nil {
			port = sockaddrPort(sa)
		}
		addrs := make([]netip.Addr, len(peers))
		for i, p := range peers {
			addrs[i] = p.addr
		}
		remote = formatSCTPAddrs(addrs, port)
	}
	f := os.NewFile(uintptr(fd), "sctp "+remote)
	rc, err := f.SyscallConn()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	t := &sctpTransport{f: f, rc: rc, remote: remote, hz: hz, scratch: make([]byte, sctpChunk)}
	return newConn(t, s, false).start(), nil
}

func (t *sctpTransport) readFrame() ([]byte, *agentproto.ProtocolError, error) {
	hdr, err := t.readN(4)
	if err != nil {
		return nil, nil, err
	}
	n := binary.BigEndian.Uint32(hdr)
	if n > agentproto.MaxFrameBytes {
		// Skip it, so the stream stays in step while the caller closes.
		if err := t.skip(int(min(n, 1<<31-1))); err != nil {
			return nil, nil, err
		}
		return nil, &agentproto.ProtocolError{Code: agentproto.CodeTooLarge,
			Detail: fmt.Sprintf("frame of %d bytes; at most %d", n, agentproto.MaxFrameBytes)}, nil
	}
	b, err := t.readN(int(n))
	if err != nil {
		return nil, nil, err
	}
	return b, nil, nil
}

func (t *sctpTransport) readN(n int) ([]byte, error) {
	for len(t.pending) < n {
		if err := t.fill(); err != nil {
			return nil, err
		}
	}
	out := slices.Clone(t.pending[:n])
	t.pending = t.pending[n:]
	if len(t.pending) == 0 {
		t.pending = nil
	}
	return out, nil
}

func (t *sctpTransport) skip(n int) error {
	for n > 0 {
		if len(t.pending) == 0 {
			if err := t.fill(); err != nil {
				return err
			}
		}
		k := min(n, len(t.pending))
		t.pending, n = t.pending[k:], n-k
	}
	return nil
}

// fill appends the next SCTP message's data to pending.
func (t *sctpTransport) fill() error {
	for {
		var n, flags int
		var rerr error
		err := t.rc.Read(func(fd uintptr) bool {
			for {
				n, _, flags, _, rerr = unix.Recvmsg(int(fd), t.scratch, nil, 0)
				if rerr != unix.EINTR {
					return rerr != unix.EAGAIN
				}
			}
		})
		if err != nil {
			return fmt.Errorf("agentwire: sctp read: %w", err)
		}
		if rerr != nil {
			return fmt.Errorf("agentwire: sctp read: %w", rerr)
		}
		if flags&sctp.MSG_NOTIFICATION != 0 {
			continue // none subscribed; never data
		}
		if n == 0 {
			return fmt.Errorf("agentwire: peer closed the association: %w", io.EOF)
		}
		t.pending = append(t.pending, t.scratch[:n]...)
		return nil
	}
}

func (t *sctpTransport) writeFrame(b []byte, deadline time.Time) error {
	if err := t.f.SetWriteDeadline(deadline); err != nil {
		return err
	}
	msg := make([]byte, 4+len(b))
	binary.BigEndian.PutUint32(msg, uint32(len(b)))
	copy(msg[4:], b)
	for len(msg) > 0 {
		chunk := msg[:min(len(msg), sctpChunk)]
		var n int
		var werr error
		err := t.rc.Write(func(fd uintptr) bool {
			for {
				n, werr = unix.SendmsgN(int(fd), chunk, nil, nil, unix.MSG_NOSIGNAL)
				if werr != unix.EINTR {
					return werr != unix.EAGAIN
				}
			}
		})
		if err != nil {
			return fmt.Errorf("sctp write: %w", err)
		}
		if werr != nil {
			return fmt.Errorf("sctp write: %w", werr)
		}
		msg = msg[n:]
	}
	return nil
}

func (t *sctpTransport) ping(time.Time, time.Time) error { return nil } // the kernel heartbeats

// closeHandshake starts SCTP's graceful shutdown: what is queued (the
// Error frame) is delivered first, then the peer sees the end.
func (t *sctpTransport) closeHandshake(string, time.Time) error {
	var serr error
	if err := t.rc.Control(func(fd uintptr) { serr = unix.Shutdown(int(fd), unix.SHUT_WR) }); err != nil {
		return err
	}
	return serr
}

func (t *sctpTransport) closeNow() error    { return t.f.Close() }
func (t *sctpTransport) remoteAddr() string { return t.remote }

// paths reads every peer address's state and smoothed RTT from the kernel.
// SCTP picks the source address per packet, so Local lists the
// association's local addresses.
func (t *sctpTransport) paths() []agentproto.Path {
	var out []agentproto.Path
	err := t.rc.Control(func(fd uintptr) {
		locals, err := sctpAddrs(int(fd), sctp.SCTP_GET_LOCAL_ADDRS)
		if err != nil {
			return
		}
		peers, err := sctpAddrs(int(fd), sctp.SCTP_GET_PEER_ADDRS)
		if err != nil {
			return
		}
		local := joinAddrs(locals)
		out = make([]agentproto.Path, 0, len(peers))
		for _, p := range peers {
			info, err := peerAddrInfo(int(fd), p.raw)
			state := agentproto.PathInactive
			var srtt int64
			switch {
			case errors.Is(err, unix.EACCES): // potentially failed, hidden by net.sctp.pf_expose
				state = agentproto.PathActive
			case err != nil: // the path went away meanwhile
			default:
				srtt = srttMicros(info.Srtt, t.hz)
				switch info.State {
				case spinfoActive, spinfoPF: // PF: heartbeats missed, not yet declared down
					state = agentproto.PathActive
				case spinfoInactive, spinfoUnconfirmed:
				}
			}
			out = append(out, agentproto.Path{Local: local, Remote: p.addr.String(), State: state, SRTTMicros: srtt})
		}
	})
	if err != nil {
		return nil
	}
	return out
}

func toSCTPAddr(addrs []netip.Addr, port int) *sctp.SCTPAddr {
	a := &sctp.SCTPAddr{Port: port}
	for _, ip := range addrs {
		a.IPAddrs = append(a.IPAddrs, net.IPAddr{IP: ip.AsSlice(), Zone: ip.Zone()})
	}
	return a
}

func unmapAll(addrs []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a.IsValid() {
			out = append(out, a.Unmap())
		}
	}
	return out
}

func sockaddrPort(sa unix.Sockaddr) int {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return sa.Port
	case *unix.SockaddrInet6:
		return sa.Port
	}
	return 0
}

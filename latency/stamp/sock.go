package stamp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/latency"
)

// rxFlags ask the kernel for software receive stamps, and for the NIC's
// raw hardware ones where the driver has been set up to make them.
const rxFlags = unix.SOF_TIMESTAMPING_RX_SOFTWARE | unix.SOF_TIMESTAMPING_SOFTWARE |
	unix.SOF_TIMESTAMPING_RX_HARDWARE | unix.SOF_TIMESTAMPING_RAW_HARDWARE

// txFlags add software transmit stamps on the error queue, without the
// packet's payload (OPT_TSONLY) and numbered per send (OPT_ID), so that a
// stamp can be matched to its probe.
const txFlags = unix.SOF_TIMESTAMPING_TX_SOFTWARE | unix.SOF_TIMESTAMPING_OPT_ID | unix.SOF_TIMESTAMPING_OPT_TSONLY

// udpSock is a UDP socket read and written with recvmsg/sendmsg through
// the runtime's poller, so that control messages come along and Close
// ends a blocked read.
type udpSock struct {
	conn   *net.UDPConn
	raw    syscall.RawConn
	family int // AF_INET or AF_INET6 (dual-stack)
	// rx is the best receive stamp the socket was set up for.
	rx latency.Source
	// tx is set when the kernel was asked for transmit stamps.
	tx bool
}

// listenUDP opens the socket and asks for stamps: SO_TIMESTAMPING first,
// then SO_TIMESTAMPNS; kernel is false in "user" mode, which leaves both
// off.
func listenUDP(addr string, kernel, wantTX bool) (*udpSock, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("resolve %q: %w", addr, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	s := &udpSock{conn: conn, rx: latency.SourceUser}
	if s.raw, err = conn.SyscallConn(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("raw conn: %w", err)
	}
	var setupErr error
	err = s.raw.Control(func(fd uintptr) {
		setupErr = s.setup(int(fd), kernel, wantTX)
	})
	if err == nil {
		err = setupErr
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("socket options on %s: %w", addr, err)
	}
	return s, nil
}

func (s *udpSock) setup(fd int, kernel, wantTX bool) error {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Errorf("getsockname: %w", err)
	}
	s.family = unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		s.family = unix.AF_INET6
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVHOPLIMIT, 1); err != nil {
			return fmt.Errorf("IPV6_RECVHOPLIMIT: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
			return fmt.Errorf("IPV6_RECVPKTINFO: %w", err)
		}
	}
	// The destination address of a probe becomes the answer's source, so
	// that a multi-homed reflector bound to a wildcard answers from the
	// address the sender probed (and demultiplexes by).
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil && s.family == unix.AF_INET {
		return fmt.Errorf("IP_PKTINFO: %w", err)
	}
	// On a dual-stack socket IPv4 packets still bring their TTL as an IP
	// level message.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_RECVTTL, 1); err != nil && s.family == unix.AF_INET {
		return fmt.Errorf("IP_RECVTTL: %w", err)
	}
	if !kernel {
		return nil
	}
	flags := rxFlags
	if wantTX {
		flags |= txFlags
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, flags); err == nil {
		s.rx, s.tx = latency.SourceKernel, wantTX
		return nil
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err == nil {
		s.rx = latency.SourceKernel
	}
	return nil
}

func (s *udpSock) Close() error { return s.conn.Close() }

// stamp is a receive (or transmit) stamp and where it came from.
type stamp struct {
	t   time.Time
	src latency.Source
}

// rxInfo is what the control messages of one datagram said.
type rxInfo struct {
	sw, hw time.Time
	ttl    int // -1: unknown
	// txID is the OPT_ID of a transmit stamp from the error queue.
	txID  uint32
	isTX  bool
	from  netip.AddrPort
	dst   netip.Addr // the datagram's destination address, if known
	n     int
	flags int
}

// best is the receive stamp to use: hardware only when asked (its clock is
// the NIC's, comparable to the system clock only when something like
// phc2sys keeps them together), else software, else now.
func (r *rxInfo) best(hw bool, now time.Time) stamp {
	switch {
	case hw && !r.hw.IsZero():
		return stamp{r.hw, latency.SourceHardware}
	case !r.sw.IsZero():
		return stamp{r.sw, latency.SourceKernel}
	}
	return stamp{now, latency.SourceUser}
}

// recv reads one datagram, or one message of the error queue (errQueue),
// blocking until there is one. It returns the error queue's EAGAIN as is.
func (s *udpSock) recv(buf, oob []byte, errQueue bool) (rxInfo, error) {
	var info rxInfo
	var n, oobn, flags int
	var from unix.Sockaddr
	var opErr error
	flag := 0
	if errQueue {
		flag = unix.MSG_ERRQUEUE
	}
	err := s.raw.Read(func(fd uintptr) bool {
		n, oobn, flags, from, opErr = unix.Recvmsg(int(fd), buf, oob, flag|unix.MSG_DONTWAIT)
		// The error queue never blocks: its caller polls it after the
		// poller said the socket has something (EPOLLERR wakes readers).
		return errQueue || !errors.Is(opErr, unix.EAGAIN)
	})
	if err != nil {
		return info, err
	}
	if opErr != nil {
		return info, opErr
	}
	return s.info(n, oobn, flags, from, oob)
}

func (r *rxInfo) parse(m unix.SocketControlMessage) {
	h, d := m.Header, m.Data
	switch {
	case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPING && len(d) >= 3*16:
		// Three timespecs: software, (deprecated), raw hardware.
		r.sw = timespec(d[0:16])
		r.hw = timespec(d[32:48])
	case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(d) >= 16:
		r.sw = timespec(d[0:16])
	case h.Level == unix.SOL_IP && h.Type == unix.IP_TTL && len(d) >= 4:
		r.ttl = int(binary.NativeEndian.Uint32(d))
	case h.Level == unix.SOL_IPV6 && h.Type == unix.IPV6_HOPLIMIT && len(d) >= 4:
		r.ttl = int(binary.NativeEndian.Uint32(d))
	case h.Level == unix.SOL_IP && h.Type == unix.IP_PKTINFO && len(d) >= unix.SizeofInet4Pktinfo:
		pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&d[0]))
		r.dst = netip.AddrFrom4(pi.Addr)
	case h.Level == unix.SOL_IPV6 && h.Type == unix.IPV6_PKTINFO && len(d) >= unix.SizeofInet6Pktinfo:
		pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&d[0]))
		r.dst = netip.AddrFrom16(pi.Addr).Unmap()
	case (h.Level == unix.SOL_IP && h.Type == unix.IP_RECVERR) || (h.Level == unix.SOL_IPV6 && h.Type == unix.IPV6_RECVERR):
		if len(d) < int(unsafe.Sizeof(unix.SockExtendedErr{})) {
			return
		}
		ee := (*unix.SockExtendedErr)(unsafe.Pointer(&d[0]))
		if ee.Errno == uint32(unix.ENOMSG) && ee.Origin == unix.SO_EE_ORIGIN_TIMESTAMPING {
			r.isTX, r.txID = true, ee.Data
		}
	}
}

// timespec reads a struct timespec (two native int64s on 64-bit Linux; the
// kernel gives the _OLD layout, which is that, to SO_TIMESTAMPING there).
func timespec(b []byte) time.Time {
	sec := int64(binary.NativeEndian.Uint64(b[0:8]))
	nsec := int64(binary.NativeEndian.Uint64(b[8:16]))
	if sec == 0 && nsec == 0 {
		return time.Time{}
	}
	return time.Unix(sec, nsec)
}

// recvAny reads the next message of the error queue (a transmit stamp)
// or, when that is empty, the next datagram, blocking until there is one.
// One poller wait covers both: the kernel flags a non-empty error queue
// with EPOLLERR, which wakes readers.
func (s *udpSock) recvAny(buf, oob []byte) (rxInfo, error) {
	var info rxInfo
	var n, oobn, flags int
	var from unix.Sockaddr
	var opErr error
	err := s.raw.Read(func(fd uintptr) bool {
		n, oobn, flags, from, opErr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if opErr == nil {
			return true
		}
		n, oobn, flags, from, opErr = unix.Recvmsg(int(fd), buf, oob, unix.MSG_DONTWAIT)
		return !errors.Is(opErr, unix.EAGAIN)
	})
	if err != nil {
		return info, err
	}
	if opErr != nil {
		return info, opErr
	}
	return s.info(n, oobn, flags, from, oob)
}

func (s *udpSock) info(n, oobn, flags int, from unix.Sockaddr, oob []byte) (rxInfo, error) {
	info := rxInfo{n: n, flags: flags, ttl: -1, from: addrPort(from)}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return info, fmt.Errorf("control messages: %w", err)
	}
	for _, m := range msgs {
		info.parse(m)
	}
	return info, nil
}

// send writes one datagram to the address, from the source address src
// if it is valid.
func (s *udpSock) send(b []byte, to netip.AddrPort, src netip.Addr) error {
	sa, err := s.sockaddr(to)
	if err != nil {
		return err
	}
	var oob []byte
	if src.IsValid() && !src.IsUnspecified() && !src.IsLinkLocalUnicast() {
		oob = s.pktinfo(src)
	}
	var opErr error
	err = s.raw.Write(func(fd uintptr) bool {
		opErr = unix.Sendmsg(int(fd), b, oob, sa, 0)
		return !errors.Is(opErr, unix.EAGAIN)
	})
	if err != nil {
		return err
	}
	return opErr
}

func (s *udpSock) sockaddr(to netip.AddrPort) (unix.Sockaddr, error) {
	a := to.Addr().Unmap()
	if s.family == unix.AF_INET {
		if !a.Is4() {
			return nil, fmt.Errorf("IPv4 socket cannot reach %s", to)
		}
		return &unix.SockaddrInet4{Port: int(to.Port()), Addr: a.As4()}, nil
	}
	if a.Is4() {
		a = netip.AddrFrom16(a.As16()) // v4-mapped on a dual-stack socket
	}
	sa := &unix.SockaddrInet6{Port: int(to.Port()), Addr: a.As16()}
	if z := a.Zone(); z != "" {
		if ifi, err := net.InterfaceByName(z); err == nil {
			sa.ZoneId = uint32(ifi.Index)
		}
	}
	return sa, nil
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr).Unmap(), uint16(a.Port))
	}
	return netip.AddrPort{}
}

// pktinfo is the control message that sets a datagram's source address.
// A dual-stack socket takes IPV6_PKTINFO with a v4-mapped address for IPv4.
func (s *udpSock) pktinfo(src netip.Addr) []byte {
	if s.family == unix.AF_INET {
		b := make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = unix.SOL_IP, unix.IP_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
		pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&b[unix.CmsgLen(0)]))
		pi.Spec_dst = src.Unmap().As4()
		return b
	}
	b := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&b[unix.CmsgLen(0)]))
	pi.Addr = src.As16() // As16 maps an IPv4 address
	return b
}

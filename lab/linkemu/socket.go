package linkemu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/traffic/netns"
)

// vlanHeadroom is room before a received frame for the VLAN tag the
// kernel took out of it (see recv).
const vlanHeadroom = 4

// socketBuffer is the receive and send buffer of the relay's sockets:
// enough for a burst of some 2000 full frames while the reader is not
// scheduled.
const socketBuffer = 4 << 20

// packetSocket is an AF_PACKET socket bound to one relay-side interface.
// Reading and writing go through the runtime's poller, so that closing the
// file ends a blocked read.
type packetSocket struct {
	file *os.File
	conn syscall.RawConn
}

// openPacketSocket opens the socket inside the namespace on nsPath and
// binds it to the interface with index ifindex. It sees the frames that
// arrive on that interface, not those it (or anyone) sends out of it.
func openPacketSocket(nsPath, ifname string, ifindex int) (*packetSocket, error) {
	var fd int
	err := netns.Do(nsPath, func() error {
		// Protocol 0 receives nothing until bind names the interface, so
		// no frame of another interface slips in between.
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("packet socket for %s: %w", ifname, err)
	}
	fail := func(what string, err error) (*packetSocket, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("packet socket for %s: %s: %w", ifname, what, err)
	}
	opts := []struct {
		level, name, value int
		what               string
	}{
		{unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1, "ignore outgoing"},
		{unix.SOL_PACKET, unix.PACKET_AUXDATA, 1, "auxdata"},
		{unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1, "timestamps"},
		{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBuffer, "receive buffer"},
		{unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBuffer, "send buffer"},
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o.level, o.name, o.value); err != nil {
			return fail(o.what, err)
		}
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}
	if err := unix.Bind(fd, sa); err != nil {
		return fail("bind", err)
	}
	f := os.NewFile(uintptr(fd), "packet:"+ifname)
	conn, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("packet socket for %s: %w", ifname, err)
	}
	return &packetSocket{file: f, conn: conn}, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (s *packetSocket) Close() error { return s.file.Close() }

// receiver reads frames off a packetSocket without allocating: its
// message header points into itself and into the buffer of the read.
type receiver struct {
	sock    *packetSocket
	msg     unix.Msghdr
	iov     unix.Iovec
	control [128]byte
	// read is the function passed to the raw connection, made once.
	read       func(fd uintptr) bool
	n, ctrlLen int
	errno      syscall.Errno
	truncated  bool
}

func newReceiver(s *packetSocket) *receiver {
	r := &receiver{sock: s}
	r.read = func(fd uintptr) bool {
		r.msg.Control = &r.control[0]
		r.msg.SetControllen(len(r.control))
		n, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&r.msg)), unix.MSG_TRUNC)
		if e == unix.EAGAIN {
			return false
		}
		r.n, r.errno, r.ctrlLen = int(n), e, int(r.msg.Controllen)
		r.truncated = r.msg.Flags&unix.MSG_TRUNC != 0
		return true
	}
	return r
}

// recv reads one frame into buf[vlanHeadroom:] and returns it (moved to
// make room for a VLAN tag if it had one) with the time it arrived. The
// kernel takes the outer VLAN tag out of every frame it receives and
// hands it over in the auxiliary data; recv puts it back. A frame larger
// than the buffer is reported with errTooLarge.
func (r *receiver) recv(buf []byte) ([]byte, time.Time, error) {
	r.iov.Base = &buf[vlanHeadroom]
	r.iov.SetLen(len(buf) - vlanHeadroom)
	r.msg.Iov = &r.iov
	r.msg.SetIovlen(1)
	if err := r.sock.conn.Read(r.read); err != nil {
		return nil, time.Time{}, err
	}
	if r.errno != 0 {
		return nil, time.Time{}, r.errno
	}
	if r.truncated {
		return nil, time.Time{}, errTooLarge
	}
	now := time.Now()
	arrival := now
	frame := buf[vlanHeadroom : vlanHeadroom+r.n]
	for ctrl := r.control[:r.ctrlLen]; len(ctrl) >= unix.SizeofCmsghdr; {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&ctrl[0]))
		if int(h.Len) < unix.SizeofCmsghdr || int(h.Len) > len(ctrl) {
			break
		}
		data := ctrl[unix.CmsgLen(0):h.Len]
		switch {
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SCM_TIMESTAMPNS && len(data) >= 16:
			sec := int64(binary.NativeEndian.Uint64(data[0:]))
			nsec := int64(binary.NativeEndian.Uint64(data[8:]))
			// The stamp is wall-clock time; keep the monotonic reading of
			// now and go back by the age, unless the clock was stepped.
			if age := now.Sub(time.Unix(sec, nsec)); age > 0 && age < time.Second {
				arrival = now.Add(-age)
			}
		case h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA && len(data) >= int(unsafe.Sizeof(unix.TpacketAuxdata{})):
			aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&data[0]))
			if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 && len(frame) >= 12 {
				tpid := uint16(unix.ETH_P_8021Q)
				if aux.Status&unix.TP_STATUS_VLAN_TPID_VALID != 0 {
					tpid = aux.Vlan_tpid
				}
				frame = buf[:r.n+vlanHeadroom]
				copy(frame[0:12], frame[vlanHeadroom:vlanHeadroom+12])
				binary.BigEndian.PutUint16(frame[12:], tpid)
				binary.BigEndian.PutUint16(frame[14:], aux.Vlan_tci)
			}
		}
		ctrl = ctrl[cmsgAlign(int(h.Len)):]
	}
	return frame, arrival, nil
}

func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}

var errTooLarge = errors.New("frame larger than the MTU")

// sender writes frames to a packetSocket.
type sender struct {
	sock  *packetSocket
	frame []byte
	errno syscall.Errno
	write func(fd uintptr) bool
}

func newSender(s *packetSocket) *sender {
	w := &sender{sock: s}
	w.write = func(fd uintptr) bool {
		_, _, e := unix.Syscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&w.frame[0])), uintptr(len(w.frame)))
		if e == unix.EAGAIN {
			return false
		}
		w.errno = e
		return true
	}
	return w
}

// send writes one whole frame, waiting for buffer space if need be.
func (w *sender) send(frame []byte) error {
	w.frame, w.errno = frame, 0
	err := w.sock.conn.Write(w.write)
	w.frame = nil
	if err != nil {
		return err
	}
	if w.errno != 0 {
		return w.errno
	}
	return nil
}

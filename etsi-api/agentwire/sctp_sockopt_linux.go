//go:build linux

package agentwire

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/ishidawataru/sctp"
	"golang.org/x/sys/unix"
)

// The parts of Linux's SCTP socket API (linux/sctp.h) that the sctp
// library leaves out or spells for another system's enum.
const (
	sppHBEnable = 1 << 0 // spp_flags: SPP_HB_ENABLE

	// enum sctp_spinfo_state
	spinfoInactive    = 0
	spinfoPF          = 1
	spinfoActive      = 2
	spinfoUnconfirmed = 3

	// struct sctp_paddrparams is packed and 4-aligned: 156 bytes, or 152
	// before Linux 4.17 added spp_ipv6_flowlabel and spp_dscp.
	paddrParamsSize     = 156
	paddrParamsOldSize  = 152
	paddrParamsHBOffset = 132 // spp_hbinterval, after spp_assoc_id and spp_address
	paddrParamsFlagsOff = 146 // spp_flags, after spp_pathmaxrxt, spp_pathmtu and spp_sackdelay
)

// paddrParams encodes struct sctp_paddrparams asking for heartbeats every
// d on all paths (address left zero) of the socket's association, or of
// the associations it will have (assoc id 0 on a one-to-one socket).
func paddrParams(d time.Duration) [paddrParamsSize]byte {
	var b [paddrParamsSize]byte
	ms := max(d.Milliseconds(), 1)
	binary.NativeEndian.PutUint32(b[paddrParamsHBOffset:], uint32(min(ms, 1<<31-1)))
	binary.NativeEndian.PutUint32(b[paddrParamsFlagsOff:], sppHBEnable)
	return b
}

// paddrinfo is struct sctp_paddrinfo (packed; Go lays it out the same).
type paddrinfo struct {
	AssocID int32
	Address [128]byte // struct sockaddr_storage
	State   int32
	Cwnd    uint32
	Srtt    uint32 // in jiffies on Linux (RFC 6458 says milliseconds)
	Rto     uint32
	Mtu     uint32
}

func peerAddrInfo(fd int, rawAddr []byte) (paddrinfo, error) {
	var info paddrinfo
	copy(info.Address[:], rawAddr)
	l := uint32(unsafe.Sizeof(info))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), sctp.SOL_SCTP, sctp.SCTP_GET_PEER_ADDR_INFO,
		uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&l)), 0)
	if errno != 0 {
		return paddrinfo{}, errno
	}
	return info, nil
}

type sctpAddr struct {
	addr netip.Addr
	raw  []byte // the kernel's sockaddr, to ask about this address
}

// sctpAddrs lists the association's local or peer addresses
// (SCTP_GET_LOCAL_ADDRS, SCTP_GET_PEER_ADDRS). The list may mix IPv4 and
// IPv6 sockaddrs, so it is walked by family, not by a fixed stride.
func sctpAddrs(fd, opt int) ([]sctpAddr, error) {
	var buf [8 + 8192]byte // struct sctp_getaddrs: assoc id, count, then the sockaddrs
	l := uint32(len(buf))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), sctp.SOL_SCTP, uintptr(opt),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&l)), 0)
	if errno != 0 {
		return nil, errno
	}
	return parseSockaddrs(buf[8:], int(binary.NativeEndian.Uint32(buf[4:8])))
}

func parseSockaddrs(b []byte, count int) ([]sctpAddr, error) {
	out := make([]sctpAddr, 0, count)
	for range count {
		if len(b) < 2 {
			return out, fmt.Errorf("sctp address list cut short")
		}
		switch fam := binary.NativeEndian.Uint16(b); fam {
		case unix.AF_INET:
			if len(b) < unix.SizeofSockaddrInet4 {
				return out, fmt.Errorf("sctp address list cut short")
			}
			out = append(out, sctpAddr{addr: netip.AddrFrom4([4]byte(b[4:8])), raw: b[:unix.SizeofSockaddrInet4]})
			b = b[unix.SizeofSockaddrInet4:]
		case unix.AF_INET6:
			if len(b) < unix.SizeofSockaddrInet6 {
				return out, fmt.Errorf("sctp address list cut short")
			}
			out = append(out, sctpAddr{addr: netip.AddrFrom16([16]byte(b[8:24])).Unmap(), raw: b[:unix.SizeofSockaddrInet6]})
			b = b[unix.SizeofSockaddrInet6:]
		default:
			return out, fmt.Errorf("sctp address of family %d", fam)
		}
	}
	return out, nil
}

func joinAddrs(as []sctpAddr) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = a.addr.String()
	}
	return strings.Join(parts, ",")
}

// kernelHZ is the kernel's tick rate, which SCTP's SRTT is counted in; 0
// if the kernel's config cannot be read.
func kernelHZ() int {
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if zr, err := gzip.NewReader(f); err == nil {
			if hz := configHZ(zr); hz > 0 {
				return hz
			}
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		if f, err := os.Open("/boot/config-" + unix.ByteSliceToString(u.Release[:])); err == nil {
			defer f.Close()
			return configHZ(f)
		}
	}
	return 0
}

// configHZ reads CONFIG_HZ from a kernel config.
func configHZ(r io.Reader) int {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CONFIG_HZ="); ok {
			if hz, err := strconv.Atoi(v); err == nil && hz > 0 {
				return hz
			}
		}
	}
	return 0
}

// srttMicros converts the kernel's SRTT to microseconds. With the tick
// rate unknown it is taken as milliseconds, the unit RFC 6458 gives it.
// Below one tick (loopback, a LAN at HZ=250) the kernel reports 0.
func srttMicros(ticks uint32, hz int) int64 {
	if hz <= 0 {
		return int64(ticks) * 1000
	}
	return int64(ticks) * 1_000_000 / int64(hz)
}

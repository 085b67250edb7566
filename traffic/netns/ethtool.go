package netns

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ETHTOOL_GTXCSUM and ETHTOOL_STXCSUM (linux/ethtool.h): get and set a
// link's transmit checksum offload, what `ethtool -K DEV tx on|off` sets.
const (
	ethtoolGTXCSUM = 0x16
	ethtoolSTXCSUM = 0x17
)

// SetFeature sets one of the legacy ethtool on/off features of the link
// name in the current namespace: cmd is the ETHTOOL_S* command
// (unix.ETHTOOL_SGRO, unix.ETHTOOL_STSO, ...).
func SetFeature(name string, cmd uint32, on bool) error {
	if len(name) >= unix.IFNAMSIZ {
		return fmt.Errorf("ethtool: link name %q too long", name)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("ethtool: socket: %w", err)
	}
	defer unix.Close(fd)
	v := ethtoolValue{cmd: cmd}
	if on {
		v.data = 1
	}
	if err := ethtool(fd, name, &v); err != nil {
		return fmt.Errorf("ethtool %s: command %#x (%t): %w", name, cmd, on, err)
	}
	return nil
}

// ethtoolValue is struct ethtool_value.
type ethtoolValue struct {
	cmd, data uint32
}

// ifreqData is struct ifreq with its union holding a pointer, as
// SIOCETHTOOL takes it (40 bytes on 64-bit).
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [24 - unsafe.Sizeof(uintptr(0))]byte
}

// SetTxChecksum turns the transmit checksum offload of the link name in
// the current namespace on or off. Off, the kernel completes TCP and UDP
// checksums in software before the packet leaves the sender's stack; on
// (veth's default), a packet crossing veths keeps a partial checksum that
// only a NIC completes — which an encapsulation on the way (GTP-U) hides
// from the NIC, so the receiver at the far end of the tunnel gets a wrong
// one.
func SetTxChecksum(name string, on bool) error {
	return SetFeature(name, ethtoolSTXCSUM, on)
}

// TxChecksum reads the transmit checksum offload of the link name in the
// current namespace.
func TxChecksum(name string) (bool, error) {
	if len(name) >= unix.IFNAMSIZ {
		return false, fmt.Errorf("ethtool: link name %q too long", name)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("ethtool: socket: %w", err)
	}
	defer unix.Close(fd)
	v := ethtoolValue{cmd: ethtoolGTXCSUM}
	if err := ethtool(fd, name, &v); err != nil {
		return false, fmt.Errorf("ethtool %s: get tx checksum: %w", name, err)
	}
	return v.data != 0, nil
}

func ethtool(fd int, name string, v *ethtoolValue) error {
	var ifr ifreqData
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(v)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}

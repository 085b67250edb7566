package netns

import (
	"os"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestSetTxChecksum turns a veth's transmit checksum offload off and on
// again inside a fresh namespace, and reads it back each time.
func TestSetTxChecksum(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (netns); CI=true forbids skipping")
		}
		t.Skip("needs root")
	}
	dir := t.TempDir()
	t.Cleanup(func() { _ = unix.Unmount(dir, unix.MNT_DETACH) })
	ns, err := Create(dir, "ethtool")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Delete(dir, "ethtool") })
	err = Do(ns, func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "csum0"}, PeerName: "csum1"}); err != nil {
			return err
		}
		on, err := TxChecksum("csum0")
		if err != nil {
			return err
		}
		if !on {
			t.Error("a new veth has tx checksum offload off; the test expects the kernel's default (on)")
		}
		for _, want := range []bool{false, true, false} {
			if err := SetTxChecksum("csum0", want); err != nil {
				return err
			}
			if got, err := TxChecksum("csum0"); err != nil || got != want {
				t.Errorf("after SetTxChecksum(%t): %t, %v", want, got, err)
			}
		}
		if err := SetTxChecksum("nosuchlink", false); err == nil {
			t.Error("a missing link was accepted")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

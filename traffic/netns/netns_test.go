package netns_test

import (
	"bufio"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/traffic/netns"
)

// requirePrivileges skips a test that needs CAP_SYS_ADMIN and CAP_NET_ADMIN
// when they are missing, except under CI=true, where it fails: a green CI
// run must mean the test really ran.
func requirePrivileges(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN); CI=true forbids skipping")
	}
	t.Skip("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)")
}

// nsDir returns a private directory for the test's namespaces. Create
// turns it into a mount point; the cleanup deletes whatever is left in it,
// unmounts it and checks that nothing remains.
func nsDir(t *testing.T) string {
	t.Helper()
	requirePrivileges(t)
	dir := t.TempDir()
	t.Cleanup(func() {
		names, _ := netns.List(dir, "")
		for _, n := range names {
			t.Errorf("netns %s left behind", n)
			_ = netns.Delete(dir, n)
		}
		_ = unix.Unmount(dir, unix.MNT_DETACH)
	})
	return dir
}

// create makes a namespace deleted at the end of the test.
func create(t *testing.T, dir, name string) string {
	t.Helper()
	path, err := netns.Create(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(dir, name); err != nil {
			t.Error(err)
		}
	})
	return path
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestCreateListDelete(t *testing.T) {
	dir := nsDir(t)
	path, err := netns.Create(dir, "t-a")
	if err != nil {
		t.Fatal(err)
	}
	if !netns.IsMounted(path) {
		t.Fatalf("%s is not a mounted namespace", path)
	}
	if inode(t, path) == inode(t, "/proc/self/ns/net") {
		t.Fatal("the new namespace is the current one")
	}
	if _, err := netns.Create(dir, "t-a"); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create: %v, want ErrExist", err)
	}
	// A file left by a crash between creating it and mounting on it.
	if err := os.WriteFile(netns.Path(dir, "t-b"), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	if _, err := netns.Create(dir, "t-b"); err != nil {
		t.Fatalf("Create over a stale file: %v", err)
	}
	h, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if _, err := netns.Create(dir, "a/b"); err == nil {
		t.Fatal("Create accepted a name with a slash")
	}

	got, err := netns.List(dir, "t-")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "t-a,t-b" {
		t.Fatalf("List = %v", got)
	}
	for _, n := range []string{"t-a", "t-b", "t-a", "never-made"} {
		if err := netns.Delete(dir, n); err != nil {
			t.Fatalf("Delete %s: %v", n, err)
		}
	}
	if got, _ := netns.List(dir, ""); len(got) != 0 {
		t.Fatalf("after Delete: %v", got)
	}
	if _, err := netns.Open(path); err == nil {
		t.Fatal("Open of a deleted namespace succeeded")
	}
}

func TestDoRunsInTheNamespaceAndRestores(t *testing.T) {
	dir := nsDir(t)
	path := create(t, dir, "t-do")
	want := inode(t, path)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before := inode(t, "/proc/thread-self/ns/net")
	err := netns.Do(path, func() error {
		if got := inode(t, "/proc/thread-self/ns/net"); got != want {
			t.Errorf("inside Do: netns inode %d, want %d", got, want)
		}
		return errors.New("from fn")
	})
	if err == nil || err.Error() != "from fn" {
		t.Fatalf("Do returned %v, want fn's error", err)
	}
	if got := inode(t, "/proc/thread-self/ns/net"); got != before {
		t.Fatalf("after Do: thread in netns %d, want %d", got, before)
	}
	if err := netns.Do(netns.Path(dir, "missing"), func() error { return nil }); err == nil {
		t.Fatal("Do into a missing namespace succeeded")
	}
}

func TestStartCmdAndProcs(t *testing.T) {
	dir := nsDir(t)
	path := create(t, dir, "t-cmd")
	out, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command("/bin/sh", "-c", "readlink /proc/self/ns/net; exec sleep 60")
	cmd.Stdout = out
	if err := netns.StartCmd(path, cmd); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	want := "net:[" + strconv.FormatUint(inode(t, path), 10) + "]"
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(out.Name())
		if strings.TrimSpace(string(b)) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child printed %q, want %q", b, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The shell's readlink child may not have exited yet when its output
	// is read: wait for the namespace to hold just the shell (now sleep).
	for {
		pids, err := netns.Procs(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(pids) == 1 && pids[0] == cmd.Process.Pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Procs = %v, want [%d]", pids, cmd.Process.Pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestVethName(t *testing.T) {
	a := netns.VethName("mec", "3f2a9c1e-7d4b-4c2a-9b1e-000000000001")
	if len(a) != netns.MaxLinkName || !strings.HasPrefix(a, "mec") {
		t.Fatalf("VethName = %q", a)
	}
	if b := netns.VethName("mec", "3f2a9c1e-7d4b-4c2a-9b1e-000000000001"); b != a {
		t.Fatalf("not deterministic: %q then %q", a, b)
	}
	if b := netns.VethName("mec", "3f2a9c1e-7d4b-4c2a-9b1e-000000000002"); b == a {
		t.Fatalf("two ids, one name %q", a)
	}
	if n := netns.VethName("averylongprefix", "x"); len(n) != netns.MaxLinkName || !strings.HasPrefix(n, "averylo") {
		t.Fatalf("long prefix: %q", n)
	}
}

// listen opens a TCP listener inside a namespace that answers each
// connection with a line.
func listen(t *testing.T, nsPath, addr, answer string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := netns.Do(nsPath, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte(answer + "\n"))
			c.Close()
		}
	}()
	return ln
}

// ask connects from inside a namespace and returns the line it gets.
func ask(t *testing.T, nsPath, addr string) string {
	t.Helper()
	var c net.Conn
	if err := netns.Do(nsPath, func() (err error) {
		c, err = net.DialTimeout("tcp", addr, 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("dial %s from %s: %v", addr, nsPath, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read from %s: %v", addr, err)
	}
	return strings.TrimSpace(line)
}

func TestVethAcrossBridge(t *testing.T) {
	dir := nsDir(t)
	host := create(t, dir, "t-host")
	inst := create(t, dir, "t-inst")
	gw := netip.MustParsePrefix("10.77.0.1/24")
	for range 2 { // idempotent
		if err := netns.EnsureBridge(host, "brt0", gw); err != nil {
			t.Fatal(err)
		}
	}
	veth := netns.Veth{
		HostNetns: host, Bridge: "brt0", HostName: netns.VethName("tv", "inst-1"),
		PeerNetns: inst, Address: netip.MustParsePrefix("10.77.0.2/24"), Gateway: gw.Addr(),
	}
	if err := netns.AddVeth(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.DelVeth(host, veth.HostName) })
	mac := linkMAC(t, inst, "eth0")
	if err := netns.AddVeth(veth); err != nil {
		t.Fatalf("repeated AddVeth: %v", err)
	}
	if got := linkMAC(t, inst, "eth0"); got != mac {
		t.Fatalf("repeated AddVeth replaced a working pair: MAC %s, was %s", got, mac)
	}
	// A pair that is not as asked (here: off the bridge) is replaced.
	withHandle(t, host, func(h *netlink.Handle) error {
		l, err := h.LinkByName(veth.HostName)
		if err != nil {
			return err
		}
		return h.LinkSetNoMaster(l)
	})
	if err := netns.AddVeth(veth); err != nil {
		t.Fatalf("AddVeth over a detached pair: %v", err)
	}
	if got := linkMAC(t, inst, "eth0"); got == mac {
		t.Fatal("AddVeth kept a pair that was off the bridge")
	}

	ln := listen(t, inst, "10.77.0.2:0", "from-instance")
	if got := ask(t, host, ln.Addr().String()); got != "from-instance" {
		t.Fatalf("host → instance: %q", got)
	}
	// An address outside the subnet is reached through the default route.
	addAddr(t, host, "brt0", "10.78.0.1/32")
	hln := listen(t, host, "10.78.0.1:0", "from-host")
	if got := ask(t, inst, hln.Addr().String()); got != "from-host" {
		t.Fatalf("instance → host via default route: %q", got)
	}

	if err := netns.DelVeth(host, veth.HostName); err != nil {
		t.Fatal(err)
	}
	if err := netns.DelVeth(host, veth.HostName); err != nil {
		t.Fatalf("second DelVeth: %v", err)
	}
	if ls, err := netns.Links(host, "tv", ""); err != nil || len(ls) != 0 {
		t.Fatalf("host links after DelVeth: %v %v", ls, err)
	}
	if ls, err := netns.Links(inst, "eth", ""); err != nil || len(ls) != 0 {
		t.Fatalf("instance links after DelVeth: %v %v", ls, err)
	}
}

// withHandle runs f with a netlink handle in the namespace on nsPath.
func withHandle(t *testing.T, nsPath string, f func(*netlink.Handle) error) {
	t.Helper()
	ns, err := netns.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := f(h); err != nil {
		t.Fatal(err)
	}
}

func linkMAC(t *testing.T, nsPath, name string) string {
	t.Helper()
	var mac string
	withHandle(t, nsPath, func(h *netlink.Handle) error {
		l, err := h.LinkByName(name)
		if err != nil {
			return err
		}
		mac = l.Attrs().HardwareAddr.String()
		return nil
	})
	return mac
}

func addAddr(t *testing.T, nsPath, link, cidr string) {
	t.Helper()
	withHandle(t, nsPath, func(h *netlink.Handle) error {
		l, err := h.LinkByName(link)
		if err != nil {
			return err
		}
		a, err := netlink.ParseAddr(cidr)
		if err != nil {
			return err
		}
		return h.AddrAdd(l, a)
	})
}

func TestVethIPv6(t *testing.T) {
	dir := nsDir(t)
	host := create(t, dir, "t6-host")
	inst := create(t, dir, "t6-inst")
	gw := netip.MustParsePrefix("fd00:77::1/64")
	if err := netns.EnsureBridge(host, "brt6", gw); err != nil {
		t.Fatal(err)
	}
	veth := netns.Veth{
		HostNetns: host, Bridge: "brt6", HostName: netns.VethName("tv", "inst-6"),
		PeerNetns: inst, Address: netip.MustParsePrefix("fd00:77::2/64"), Gateway: gw.Addr(),
	}
	if err := netns.AddVeth(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.DelVeth(host, veth.HostName) })
	// Usable at once: no duplicate address detection holds it back.
	ln := listen(t, inst, "[fd00:77::2]:0", "over-v6")
	if got := ask(t, host, ln.Addr().String()); got != "over-v6" {
		t.Fatalf("host → instance over IPv6: %q", got)
	}
}

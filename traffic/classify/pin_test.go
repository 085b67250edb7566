package classify

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// bpffs mounts a fresh bpf filesystem for the test and returns a directory
// in it that does not exist yet (Open creates it).
func bpffs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, "mode=0700"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("mount bpffs (CI=true, not skipping): %v", err)
		}
		t.Skipf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return filepath.Join(dir, "classify")
}

func openPinned(t *testing.T, dir string) (*Classifier, bool) {
	t.Helper()
	c, reused, err := Open(Options{PinDir: dir})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return c, reused
}

// tcxProgs are the programs tcx runs at ifindex in direction attach.
func tcxProgs(t *testing.T, ifindex int, attach ebpf.AttachType) []ebpf.ProgramID {
	t.Helper()
	res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: attach})
	if err != nil {
		t.Fatalf("query tcx at %d: %v", ifindex, err)
	}
	var ids []ebpf.ProgramID
	for _, p := range res.Programs {
		ids = append(ids, p.ID)
	}
	return ids
}

func progID(t *testing.T, p *ebpf.Program) ebpf.ProgramID {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("no program ID")
	}
	return id
}

func activeWord(t *testing.T, c *Classifier) uint32 {
	t.Helper()
	var v uint32
	if err := c.objs.Active.Lookup(uint32(0), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPinnedRestart: an agent restart with pinned maps and links leaves no
// gap. The first process pins, attaches and exits without unpinning;
// packets are still steered; the second reuses the maps (UE, rules, active
// slot) and swaps its program into the same link, leaving exactly one
// program on the interface; RemovePins then detaches everything and leaves
// the directory empty.
func TestPinnedRestart(t *testing.T) {
	dir := bpffs(t)
	inNetns(t)
	ranOut, ranIn := vethPair(t, "ran0", "ran1")
	appHost, app := vethPair(t, "app1", "app0")
	ran, appIdx := ranIn.Attrs().Index, appHost.Attrs().Index
	tx := packetSock(t, ranOut.Attrs().Index, unix.ETH_P_ALL)
	atApp := packetSock(t, app.Attrs().Index, unix.ETH_P_ALL)
	classifyPin := filepath.Join(dir, "links", "ran1-ingress")
	returnPin := filepath.Join(dir, "links", "app1-ingress")

	mac := net.HardwareAddr{0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee}
	gtp := gtpFrame(gtpu(7, false, [][]byte{pduSession(1, 9, 0)}, innerUE()))
	toApp := append(append(append([]byte{}, mac...), gtp[6:12]...), 0x08, 0x00)
	toApp = append(toApp, innerUE()...)
	rules := []Rule{{ID: "fd", Action: ActionForwardDecapsulated, Dest: Dest{Ifindex: appIdx, MAC: mac},
		Filters: []Filter{{TunnelType: "GTP_U"}}}}
	steered := func(what string) {
		t.Helper()
		drain(atApp)
		send(t, tx, ranOut.Attrs().Index, gtp)
		if !received(atApp, toApp, 2*time.Second) {
			t.Fatalf("%s: the G-PDU was not steered to the app", what)
		}
	}
	ue := netip.MustParseAddr("10.45.0.7")
	path := UEPath{GNB: netip.MustParseAddr("172.16.0.2"), TEID: 7, QFI: 9, Source: netip.MustParseAddr("172.16.0.1")}

	// First run.
	c1, reused := openPinned(t, dir)
	if reused {
		t.Fatal("first Open reports reused maps")
	}
	if err := c1.SetUE(ue, path); err != nil {
		t.Fatal(err)
	}
	if err := c1.Apply(rules); err != nil {
		t.Fatal(err)
	}
	l1, err := AttachPinned(c1.Program(), ran, ebpf.AttachTCXIngress, classifyPin)
	if err != nil {
		t.Fatal(err)
	}
	r1, err := AttachPinned(c1.ReturnPath(), appIdx, ebpf.AttachTCXIngress, returnPin)
	if err != nil {
		t.Fatal(err)
	}
	steered("first run")
	active1 := activeWord(t, c1)
	// The agent exits: every handle closed, nothing unpinned.
	l1.Close()
	r1.Close()
	c1.Close()
	steered("no process holding the classifier")

	// Second run.
	c2, reused := openPinned(t, dir)
	t.Cleanup(func() { c2.Close() })
	if !reused {
		t.Fatal("second Open did not reuse the pinned maps")
	}
	if ues, err := c2.UEs(); err != nil || ues[ue] != path {
		t.Fatalf("UE map after restart: %v, %v", ues, err)
	}
	if rc, mark := run(t, c2.Program(), gtp); rc != tcActRedirect || mark != 1 {
		t.Fatalf("new program on the kept rules: rc=%d mark=%d", rc, mark)
	}
	// The next Apply writes the idle slot: the active bit flips.
	if err := c2.Apply(rules); err != nil {
		t.Fatal(err)
	}
	if a := activeWord(t, c2); a>>31 == active1>>31 || a&0x7fffffff != 1 {
		t.Fatalf("active %#x after Apply, was %#x: the live slot was rewritten", a, active1)
	}
	l2, err := AttachPinned(c2.Program(), ran, ebpf.AttachTCXIngress, classifyPin)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if ids := tcxProgs(t, ran, ebpf.AttachTCXIngress); len(ids) != 1 || ids[0] != progID(t, c2.Program()) {
		t.Fatalf("tcx programs at ran1 after re-attach: %v, want only %d", ids, progID(t, c2.Program()))
	}
	if _, err := AttachPinned(c2.ReturnPath(), appIdx, ebpf.AttachTCXIngress, returnPin); err != nil {
		t.Fatal(err)
	}
	if ids := tcxProgs(t, appIdx, ebpf.AttachTCXIngress); len(ids) != 1 || ids[0] != progID(t, c2.ReturnPath()) {
		t.Fatalf("tcx programs at app1: %v", ids)
	}
	steered("second run")
	if cnt, err := c2.Counters(); err != nil || cnt["fd"].Packets != 1 {
		t.Fatalf("counters after restart: %v, %v", cnt, err)
	}

	// Steering off.
	if err := RemovePins(dir); err != nil {
		t.Fatal(err)
	}
	for _, idx := range []int{ran, appIdx} {
		if ids := tcxProgs(t, idx, ebpf.AttachTCXIngress); len(ids) != 0 {
			t.Errorf("tcx programs at %d after RemovePins: %v", idx, ids)
		}
	}
	if ents, err := os.ReadDir(dir); err != nil || len(ents) != 0 {
		t.Errorf("pin dir after RemovePins: %v, %v", ents, err)
	}
	drain(atApp)
	send(t, tx, ranOut.Attrs().Index, gtp)
	if received(atApp, toApp, 200*time.Millisecond) {
		t.Error("still steered after RemovePins")
	}
}

// TestAttachPinnedElsewhere: a pinned link for another interface or
// direction, or for an interface that is gone, is replaced: the program
// ends up once, where asked, and nowhere else.
func TestAttachPinnedElsewhere(t *testing.T) {
	dir := bpffs(t)
	inNetns(t)
	_, a := vethPair(t, "a0", "a1")
	_, b := vethPair(t, "b0", "b1")
	c, _ := openPinned(t, dir)
	t.Cleanup(func() { c.Close() })
	pin := filepath.Join(dir, "link")
	in, eg := ebpf.AttachTCXIngress, ebpf.AttachTCXEgress
	id := progID(t, c.Program())
	alive := []int{a.Attrs().Index, b.Attrs().Index}
	where := func(want map[int]map[ebpf.AttachType]int) {
		t.Helper()
		for _, idx := range alive {
			for _, dir := range []ebpf.AttachType{in, eg} {
				ids := tcxProgs(t, idx, dir)
				if len(ids) != want[idx][dir] || len(ids) == 1 && ids[0] != id {
					t.Fatalf("ifindex %d %v: programs %v, want %d of ours", idx, dir, ids, want[idx][dir])
				}
			}
		}
	}
	attach := func(idx int, dir ebpf.AttachType) {
		t.Helper()
		l, err := AttachPinned(c.Program(), idx, dir, pin)
		if err != nil {
			t.Fatal(err)
		}
		l.Close()
	}
	attach(a.Attrs().Index, in)
	attach(a.Attrs().Index, in) // same place: swapped in, not added
	where(map[int]map[ebpf.AttachType]int{a.Attrs().Index: {in: 1}})
	attach(b.Attrs().Index, in)
	where(map[int]map[ebpf.AttachType]int{b.Attrs().Index: {in: 1}})
	attach(b.Attrs().Index, eg)
	where(map[int]map[ebpf.AttachType]int{b.Attrs().Index: {eg: 1}})
	// The interface goes away: the pinned link is defunct.
	if err := netlink.LinkDel(b); err != nil {
		t.Fatal(err)
	}
	alive = alive[:1]
	attach(a.Attrs().Index, eg)
	where(map[int]map[ebpf.AttachType]int{a.Attrs().Index: {eg: 1}})
	// Something that is not a link at the pin path is not touched.
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	notLink := filepath.Join(dir, "map")
	if err := m.Pin(notLink); err != nil {
		t.Fatal(err)
	}
	if _, err := AttachPinned(c.Program(), a.Attrs().Index, in, notLink); err == nil {
		t.Fatal("AttachPinned replaced a pinned map")
	}
	if _, err := os.Stat(notLink); err != nil {
		t.Fatalf("pinned map gone: %v", err)
	}
	if err := RemovePins(dir); err != nil {
		t.Fatal(err)
	}
	where(nil)
}

// TestOpenIncompatiblePins: pinned maps that no longer fit the programs (a
// layout change: here the UE map as the plain hash it used to be) or an
// incomplete set are dropped and the classifier starts afresh (reused
// false), with the new layout pinned.
func TestOpenIncompatiblePins(t *testing.T) {
	dir := bpffs(t)
	c, _ := openPinned(t, dir)
	ue := netip.MustParseAddr("10.45.0.7")
	if err := c.SetUE(ue, UEPath{GNB: netip.MustParseAddr("172.16.0.2"), TEID: 7, Source: netip.MustParseAddr("172.16.0.1")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply([]Rule{{ID: "r", Action: ActionDrop, Filters: []Filter{{DstPort: []string{"53"}}}}}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	// The old layout's UE map: a plain hash.
	if err := os.Remove(filepath.Join(dir, "ues")); err != nil {
		t.Fatal(err)
	}
	old, err := ebpf.NewMap(&ebpf.MapSpec{Name: "ues", Type: ebpf.Hash, KeySize: 16, ValueSize: 16, MaxEntries: 65536})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Pin(filepath.Join(dir, "ues")); err != nil {
		t.Fatal(err)
	}
	old.Close()

	c, reused := openPinned(t, dir)
	if reused {
		t.Fatal("incompatible pins reported reused")
	}
	if typ := c.objs.Ues.Type(); typ != ebpf.LRUHash {
		t.Fatalf("UE map is %v, want LRUHash", typ)
	}
	if ues, err := c.UEs(); err != nil || len(ues) != 0 {
		t.Fatalf("UEs after a fresh start: %v, %v", ues, err)
	}
	if rc, mark := run(t, c.Program(), v4udp()); rc != tcxNext || mark != staleMark {
		t.Fatalf("old rules still in force after a fresh start: rc=%#x mark=%#x", rc, mark)
	}
	if err := c.SetUE(ue, UEPath{GNB: netip.MustParseAddr("172.16.0.2"), TEID: 8, Source: netip.MustParseAddr("172.16.0.1")}); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if c, reused := openPinned(t, dir); !reused {
		t.Fatal("the fresh pins were not reused")
	} else if ues, _ := c.UEs(); ues[ue].TEID != 8 {
		t.Fatalf("UE after reopen: %+v", ues[ue])
	} else {
		c.Close()
	}

	// A set with a map missing is not half reused.
	if err := os.Remove(filepath.Join(dir, "stats")); err != nil {
		t.Fatal(err)
	}
	c, reused = openPinned(t, dir)
	defer c.Close()
	if ues, _ := c.UEs(); reused || len(ues) != 0 {
		t.Fatalf("incomplete pins: reused=%v UEs %v", reused, ues)
	}
}

// TestPinDirMustBeBPFFS: a directory elsewhere is refused by Open, and
// RemovePins deletes nothing in it.
func TestPinDirMustBeBPFFS(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "precious")
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(Options{PinDir: dir}); err == nil {
		t.Error("Open pinned outside a bpffs")
	}
	if err := RemovePins(dir); err == nil {
		t.Error("RemovePins accepted a directory outside a bpffs")
	}
	if _, err := os.Stat(keep); err != nil {
		t.Fatalf("RemovePins deleted a file: %v", err)
	}
	if err := RemovePins(filepath.Join(dir, "missing")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RemovePins on a missing dir: %v", err)
	}
}

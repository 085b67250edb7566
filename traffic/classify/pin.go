package classify

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Pinning: with Options.PinDir the maps live in a bpffs directory, and with
// AttachPinned the tcx links do too, so the data path keeps running while
// the agent restarts: the pinned links hold the old programs, which hold the
// pinned maps; the new process loads its programs against the same maps and
// swaps them into the same links.

// preparePins sets every map of spec to be pinned by name and reports whether
// all of them are already pinned in dir. A partial set (an interrupted
// start, or leftovers of another layout) is removed: half of an old state
// is worse than none (an active count over zeroed entries would match every
// packet).
func preparePins(spec *ebpf.CollectionSpec, dir string) (bool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("classify: pin dir: %w", err)
	}
	if err := onBPFFS(dir); err != nil {
		return false, err
	}
	present := 0
	names := mapNames(spec)
	for _, name := range names {
		spec.Maps[name].Pinning = ebpf.PinByName
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			present++
		} else if !errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("classify: pinned map %s: %w", name, err)
		}
	}
	if present == len(names) {
		return true, nil
	}
	if present > 0 {
		return false, removeMapPins(spec, dir)
	}
	return false, nil
}

// mapNames are spec's maps, without the data sections libbpf-style loaders
// make of globals (none today; they hold no state worth keeping).
func mapNames(spec *ebpf.CollectionSpec) []string {
	var out []string
	for name := range spec.Maps {
		if !strings.HasPrefix(name, ".") {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// removeMapPins unpins spec's maps from dir. Programs still holding a map
// keep it until they go; a new load creates new ones.
func removeMapPins(spec *ebpf.CollectionSpec, dir string) error {
	for _, name := range mapNames(spec) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("classify: unpin map %s: %w", name, err)
		}
	}
	return nil
}

// bpffsMagic is BPF_FS_MAGIC (linux/magic.h).
const bpffsMagic = 0xcafe4a11

// onBPFFS refuses a directory that is not on a bpffs: pins cannot live
// there, and RemovePins must never delete ordinary files.
func onBPFFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("classify: %s: %w", dir, err)
	}
	if uint32(st.Type) != bpffsMagic {
		return fmt.Errorf("classify: %s is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)", dir)
	}
	return nil
}

// AttachPinned attaches prog with tcx (attach: ebpf.AttachTCXIngress or
// AttachTCXEgress) at ifindex through a link pinned at pinPath, so the
// attachment outlives the process. When pinPath already holds the tcx link
// of that interface and direction (an earlier run's), prog is swapped into
// it atomically: no packet goes unclassified and no second program is
// attached. A pinned link for another interface or direction, or one whose
// interface is gone, is detached and unpinned, and prog attached anew. The
// returned link may be closed without detaching (the pin keeps it); Unpin
// or RemovePins detaches. The ifindex is that of the caller's network
// namespace: use one pinPath per interface and namespace.
func AttachPinned(prog *ebpf.Program, ifindex int, attach ebpf.AttachType, pinPath string) (link.Link, error) {
	l, err := link.LoadPinnedLink(pinPath, nil)
	switch {
	case err == nil:
		same, err := tcxLinkAt(l, ifindex, attach)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("classify: pinned link %s: %w", pinPath, err)
		}
		if same {
			err := l.Update(prog)
			if err == nil {
				return l, nil
			}
			if !errors.Is(err, unix.ENOLINK) {
				l.Close()
				return nil, fmt.Errorf("classify: swap program in pinned link %s: %w", pinPath, err)
			}
			// The interface went away between the check and the update.
		}
		if err := dropLink(l); err != nil {
			return nil, fmt.Errorf("classify: replace pinned link %s: %w", pinPath, err)
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("classify: pinned link %s: %w", pinPath, err)
	}
	if err := os.MkdirAll(filepath.Dir(pinPath), 0o700); err != nil {
		return nil, fmt.Errorf("classify: pin dir: %w", err)
	}
	l, err = link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: attach})
	if err != nil {
		return nil, fmt.Errorf("classify: attach tcx at ifindex %d: %w", ifindex, err)
	}
	if err := l.Pin(pinPath); err != nil {
		l.Close() // unpinned: detaches
		return nil, fmt.Errorf("classify: pin link at %s: %w", pinPath, err)
	}
	return l, nil
}

// tcxLinkAt reports whether l is a live tcx link at ifindex in direction
// attach. A link whose interface is gone reports ifindex 0.
func tcxLinkAt(l link.Link, ifindex int, attach ebpf.AttachType) (bool, error) {
	info, err := l.Info()
	if err != nil {
		return false, err
	}
	if info.Type != link.TCXType {
		return false, fmt.Errorf("not a tcx link (type %d)", info.Type)
	}
	tcx := info.TCX()
	return tcx != nil && tcx.Ifindex != 0 && int(tcx.Ifindex) == ifindex &&
		ebpf.AttachType(tcx.AttachType) == attach, nil
}

// dropLink detaches, unpins and closes l. Detach first: the link's last
// reference may otherwise be dropped later (unpinning frees it only after
// an RCU grace period), leaving the old program running meanwhile.
func dropLink(l link.Link) error {
	defer l.Close()
	// A defunct link (interface gone) has nothing to detach from.
	if err := l.Detach(); err != nil && !errors.Is(err, unix.ENOLINK) && !errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	return l.Unpin()
}

// RemovePins detaches every pinned link under dir and unpins every link,
// map and program there (subdirectories included), for when steering is
// turned off: the programs stop and the maps go once nothing holds them.
// dir itself stays, empty. A missing dir is nothing to do.
func RemovePins(dir string) error {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err := onBPFFS(dir); err != nil {
		return err
	}
	var dirs []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir {
				dirs = append(dirs, path)
			}
			return nil
		}
		if l, err := link.LoadPinnedLink(path, nil); err == nil {
			if err := dropLink(l); err != nil {
				return fmt.Errorf("classify: remove pinned link %s: %w", path, err)
			}
			return nil
		}
		// Maps, programs, or a link of a kind this library cannot open:
		// unlinking the pin is unpinning.
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("classify: unpin %s: %w", path, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Deepest first, so each is empty when its turn comes.
	for _, d := range slices.Backward(dirs) {
		if err := os.Remove(d); err != nil {
			return fmt.Errorf("classify: remove pin dir %s: %w", d, err)
		}
	}
	return nil
}

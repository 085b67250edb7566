// Package qos shapes app instances' traffic on one interface: an HTB tree
// with one class per instance, and a tcx egress program that picks the class
// of each packet by setting skb->priority to the class handle. See README.md.
package qos

import (
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/traffic/netns"
)

// Direction says which address of a packet names its app instance.
type Direction uint8

const (
	// BySource: upstream traffic, shaped on the way out of the edge host.
	BySource Direction = iota
	// ByDestination: downstream traffic, shaped towards the instance.
	ByDestination
)

// Handles of the HTB tree. Class minors of apps stay below 0x8000 so that
// their leaf qdiscs' majors (equal to the minor) never meet the handles the
// kernel picks by itself (0x8000 and up).
const (
	rootMajor     = 1
	parentMinor   = 1
	DefaultMinor  = 0xfffe // the class of everything not mapped to an app
	defaultLeaf   = 0x7ffe // major of the default class's pfifo
	firstAppMinor = 2
	lastAppMinor  = 0x7ffd
)

// DefaultLinkRate is the parent class's rate when Config.LinkRate is 0:
// what veth reports as its speed. Apps borrow up to their ceil from it.
const DefaultLinkRate = 10_000_000_000

// Config describes one shaped interface. Rates are in bits per second.
type Config struct {
	Link string // interface name inside the namespace
	// LinkRate is the rate (and ceil) of the parent class 1:1, the most the
	// interface may carry in all; 0 means DefaultLinkRate.
	LinkRate    uint64
	DefaultRate uint64 // guaranteed to unmapped traffic (class 1:fffe)
	DefaultCeil uint64 // most unmapped traffic may borrow; 0 means DefaultRate
	Direction   Direction
}

// Shaper owns the HTB tree on one interface and the tcx program feeding it.
// Its methods may be called from several goroutines.
type Shaper struct {
	mu      sync.Mutex
	cfg     Config
	nsPath  string
	h       *netlink.Handle
	ifindex int
	objs    qosObjects
	tcx     link.Link
	rooted  bool // the HTB root is ours to delete
	apps    map[string]app
	minors  map[uint16]string // minor -> app id
	closed  bool
}

type app struct {
	minor uint16
	addr  netip.Addr
}

// ClassHandle is TC_H_MAKE(1, minor): the value the program stores in
// skb->priority and the class id HTB looks it up as.
func ClassHandle(minor uint16) uint32 { return netlink.MakeHandle(rootMajor, minor) }

// New sets up shaping on cfg.Link in the namespace mounted on nsPath (empty:
// the current one): HTB root 1: whose default class is 1:fffe, parent class
// 1:1, the default class with a pfifo leaf, and the program attached with
// tcx at egress. An HTB root 1: left by an earlier process is removed first,
// with its classes, since nothing records which apps they belonged to; the
// caller then re-applies its apps with SetApp. A root qdisc someone else set
// up (one with a handle other than 1:) is an error rather than replaced.
func New(nsPath string, cfg Config) (*Shaper, error) {
	if cfg.Link == "" {
		return nil, errors.New("qos: no link")
	}
	if cfg.Direction != BySource && cfg.Direction != ByDestination {
		return nil, fmt.Errorf("qos: bad direction %d", cfg.Direction)
	}
	if cfg.LinkRate == 0 {
		cfg.LinkRate = DefaultLinkRate
	}
	if cfg.DefaultCeil == 0 {
		cfg.DefaultCeil = cfg.DefaultRate
	}
	if err := checkRates(cfg.DefaultRate, cfg.DefaultCeil); err != nil {
		return nil, fmt.Errorf("qos: default class: %w", err)
	}
	h, err := netns.Handle(nsPath)
	if err != nil {
		return nil, fmt.Errorf("qos: %w", err)
	}
	s := &Shaper{cfg: cfg, nsPath: nsPath, h: h, apps: map[string]app{}, minors: map[uint16]string{}}
	if err := s.setup(); err != nil {
		return nil, errors.Join(err, s.Close())
	}
	return s, nil
}

func checkRates(rate, ceil uint64) error {
	if rate == 0 {
		return errors.New("rate is 0")
	}
	if ceil < rate {
		return fmt.Errorf("ceil %d below rate %d", ceil, rate)
	}
	return nil
}

func (s *Shaper) setup() error {
	l, err := s.h.LinkByName(s.cfg.Link)
	if err != nil {
		return fmt.Errorf("qos: link %s: %w", s.cfg.Link, err)
	}
	s.ifindex = l.Attrs().Index
	if err := s.clearStaleRoot(); err != nil {
		return err
	}
	root := netlink.NewHtb(netlink.QdiscAttrs{
		LinkIndex: s.ifindex,
		Handle:    netlink.MakeHandle(rootMajor, 0),
		Parent:    netlink.HANDLE_ROOT,
	})
	root.Defcls = DefaultMinor
	if err := s.h.QdiscReplace(root); err != nil {
		return fmt.Errorf("qos: htb root on %s: %w", s.cfg.Link, err)
	}
	s.rooted = true
	if err := s.putClass(netlink.MakeHandle(rootMajor, 0), parentMinor, s.cfg.LinkRate, s.cfg.LinkRate); err != nil {
		return err
	}
	if err := s.putClass(ClassHandle(parentMinor), DefaultMinor, s.cfg.DefaultRate, s.cfg.DefaultCeil); err != nil {
		return err
	}
	if err := s.putLeaf(DefaultMinor, defaultLeaf); err != nil {
		return err
	}

	if err := loadQosObjects(&s.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return fmt.Errorf("qos: load: %+v", ve)
		}
		return fmt.Errorf("qos: load: %w", err)
	}
	// The settings go in before the program is attached: until then the
	// program would leave packets alone, after it every packet is classified.
	set := qosSettings{Direction: uint32(s.cfg.Direction), DefaultClass: ClassHandle(DefaultMinor)}
	if err := s.objs.Config.Put(uint32(0), &set); err != nil {
		return fmt.Errorf("qos: write settings: %w", err)
	}
	// tcx resolves the ifindex in the namespace of the calling thread.
	return netns.Do(s.nsPath, func() error {
		l, err := link.AttachTCX(link.TCXOptions{
			Interface: s.ifindex,
			Program:   s.objs.Qos,
			Attach:    ebpf.AttachTCXEgress,
		})
		if err != nil {
			return fmt.Errorf("qos: attach tcx egress on %s: %w", s.cfg.Link, err)
		}
		s.tcx = l
		return nil
	})
}

// clearStaleRoot deletes an HTB root 1: (ours, from an earlier run) and
// refuses a root qdisc that the kernel did not put there by default (those
// have handle 0: noqueue, pfifo_fast, mq).
func (s *Shaper) clearStaleRoot() error {
	l := &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: s.ifindex}}
	qs, err := s.h.QdiscList(l)
	if err != nil {
		return fmt.Errorf("qos: list qdiscs of %s: %w", s.cfg.Link, err)
	}
	for _, q := range qs {
		a := q.Attrs()
		if a.Parent != netlink.HANDLE_ROOT || a.Handle == 0 {
			continue
		}
		if q.Type() != "htb" || a.Handle != netlink.MakeHandle(rootMajor, 0) {
			return fmt.Errorf("qos: %s has root qdisc %s %s, not ours", s.cfg.Link, q.Type(), netlink.HandleStr(a.Handle))
		}
		if err := s.h.QdiscDel(q); err != nil {
			return fmt.Errorf("qos: remove stale htb on %s: %w", s.cfg.Link, err)
		}
	}
	return nil
}

// putClass creates or updates class 1:minor under parent.
func (s *Shaper) putClass(parent uint32, minor uint16, rate, ceil uint64) error {
	c := netlink.NewHtbClass(netlink.ClassAttrs{
		LinkIndex: s.ifindex,
		Parent:    parent,
		Handle:    ClassHandle(minor),
	}, netlink.HtbClassAttrs{Rate: rate, Ceil: ceil})
	if err := s.h.ClassReplace(c); err != nil {
		return fmt.Errorf("qos: class %s on %s: %w", netlink.HandleStr(ClassHandle(minor)), s.cfg.Link, err)
	}
	return nil
}

// putLeaf gives class 1:minor an explicit pfifo with handle major:. HTB
// would make an anonymous one by itself; a named one shows in tc's output
// next to its class. Without options pfifo holds txqueuelen packets.
func (s *Shaper) putLeaf(minor, major uint16) error {
	q := &netlink.GenericQdisc{QdiscType: "pfifo", QdiscAttrs: netlink.QdiscAttrs{
		LinkIndex: s.ifindex,
		Parent:    ClassHandle(minor),
		Handle:    netlink.MakeHandle(major, 0),
	}}
	if err := s.h.QdiscReplace(q); err != nil {
		return fmt.Errorf("qos: pfifo under %s on %s: %w", netlink.HandleStr(ClassHandle(minor)), s.cfg.Link, err)
	}
	return nil
}

// minorFor picks the class minor of id: a hash of the id, so that the same
// app gets the same class across restarts, moved to the next free minor on
// a collision.
func (s *Shaper) minorFor(id string) (uint16, error) {
	if a, ok := s.apps[id]; ok {
		return a.minor, nil
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	const n = lastAppMinor - firstAppMinor + 1
	start := h.Sum32() % n
	for i := uint32(0); i < n; i++ {
		m := uint16(firstAppMinor + (start+i)%n)
		if _, used := s.minors[m]; !used {
			return m, nil
		}
	}
	return 0, errors.New("qos: no free class")
}

// SetApp creates or updates the class of app id (rate guaranteed, up to
// ceil borrowed from the link; bits/s, ceil 0 means rate) and sends the
// packets whose address (source or destination, per Config.Direction) is
// addr to it. Moving an app to another address unmaps the old one.
func (s *Shaper) SetApp(id string, addr netip.Addr, rate, ceil uint64) error {
	if id == "" {
		return errors.New("qos: empty app id")
	}
	if !addr.IsValid() {
		return fmt.Errorf("qos: app %s: no address", id)
	}
	addr = addr.Unmap()
	if ceil == 0 {
		ceil = rate
	}
	if err := checkRates(rate, ceil); err != nil {
		return fmt.Errorf("qos: app %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("qos: shaper closed")
	}
	for other, a := range s.apps {
		if other != id && a.addr == addr {
			return fmt.Errorf("qos: app %s: address %s belongs to app %s", id, addr, other)
		}
	}
	minor, err := s.minorFor(id)
	if err != nil {
		return err
	}
	if err := s.putClass(ClassHandle(parentMinor), minor, rate, ceil); err != nil {
		return err
	}
	if err := s.putLeaf(minor, minor); err != nil {
		return err
	}
	old, had := s.apps[id]
	s.apps[id] = app{minor: minor, addr: addr}
	s.minors[minor] = id
	if err := s.objs.Classes.Put(qosAddrKey{Addr: addr.As16()}, ClassHandle(minor)); err != nil {
		return fmt.Errorf("qos: map %s to app %s: %w", addr, id, err)
	}
	if had && old.addr != addr {
		if err := s.objs.Classes.Delete(qosAddrKey{Addr: old.addr.As16()}); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("qos: unmap %s of app %s: %w", old.addr, id, err)
		}
	}
	return nil
}

// RemoveApp unmaps the app's address (its packets fall to the default
// class) and deletes its class and leaf. An unknown id is not an error, so
// that a reconcile loop may remove twice.
func (s *Shaper) RemoveApp(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("qos: shaper closed")
	}
	a, ok := s.apps[id]
	if !ok {
		return nil
	}
	// Unmap first: a packet classified to a class that no longer exists
	// would go through HTB's filters and then to the default class anyway,
	// but this way no packet is ever steered at a dying class.
	if err := s.objs.Classes.Delete(qosAddrKey{Addr: a.addr.As16()}); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("qos: unmap %s of app %s: %w", a.addr, id, err)
	}
	c := &netlink.HtbClass{ClassAttrs: netlink.ClassAttrs{
		LinkIndex: s.ifindex,
		Parent:    ClassHandle(parentMinor),
		Handle:    ClassHandle(a.minor),
	}}
	if err := s.h.ClassDel(c); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("qos: delete class of app %s: %w", id, err)
	}
	delete(s.apps, id)
	delete(s.minors, a.minor)
	return nil
}

// Class returns the HTB class handle of app id.
func (s *Shaper) Class(id string) (uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.apps[id]
	return ClassHandle(a.minor), ok
}

// Close detaches the program and deletes the HTB root, which takes every
// class and leaf with it. An interface that has gone (an instance's veth
// removed with its namespace) took all of that with it and is no error.
// Closing twice is a no-op.
func (s *Shaper) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var errs []error
	if s.tcx != nil {
		if err := s.tcx.Close(); err != nil {
			errs = append(errs, fmt.Errorf("qos: detach: %w", err))
		}
	}
	if s.rooted {
		root := netlink.NewHtb(netlink.QdiscAttrs{
			LinkIndex: s.ifindex,
			Handle:    netlink.MakeHandle(rootMajor, 0),
			Parent:    netlink.HANDLE_ROOT,
		})
		if err := s.h.QdiscDel(root); err != nil && !gone(err) {
			errs = append(errs, fmt.Errorf("qos: delete htb on %s: %w", s.cfg.Link, err))
		}
	}
	if err := s.objs.Close(); err != nil {
		errs = append(errs, err)
	}
	s.h.Close()
	return errors.Join(errs...)
}

// gone: the qdisc or its device no longer exists.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV)
}

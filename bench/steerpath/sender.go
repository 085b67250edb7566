package steerpath

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/traffic/netns"
)

// openSender opens an AF_PACKET socket on the link ifindex of the namespace
// on nsPath that writes frames straight to the driver (PACKET_QDISC_BYPASS).
// Protocol 0: it only sends; with ETH_P_ALL it would also be a tap that
// receives a copy of every frame it sends. SO_SNDTIMEO keeps a stuck
// receive side from blocking it for ever.
func openSender(nsPath string, ifindex int) (int, error) {
	fd := -1
	err := netns.Do(nsPath, func() error {
		var err error
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0); err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
			return fmt.Errorf("bind AF_PACKET to link %d: %w", ifindex, err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
		}
		// Open loop: a send buffer large enough that the sender never
		// waits for the receive side to free its frames; what the
		// receive side cannot take is dropped on its queue, and counted.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, sndBuf); err != nil {
			return fmt.Errorf("SO_SNDBUFFORCE: %w", err)
		}
		tv := unix.Timeval{Usec: 200000}
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	})
	if err != nil && fd >= 0 {
		unix.Close(fd)
		fd = -1
	}
	return fd, err
}

// sndBuf is the sender's socket buffer: at 2.3 KiB of truesize for the
// largest frames, about 14,000 frames in flight, well over the 1,000 of a
// CPU's backlog (net.core.netdev_max_backlog).
const sndBuf = 32 << 20

type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// window is one timed send. A frame the kernel refuses is one that was
// built and handed to dut's veth, which dropped it because the receiving
// CPU's backlog was full: sendmmsg stops at it and returns the count before
// it (or ENOBUFS when it was the first), and the frame is gone.
type window struct {
	sent, refused       uint64        // frames the kernel took, and refused, in the window
	sentAll, refusedAll uint64        // ... during the whole send, warmup included
	thread              time.Duration // the sender thread's CPU time in the window
	preempted           int64         // involuntary context switches of the sender thread in the window
	wall                time.Duration
	before, after       snapshot
}

// blast sends frame in batches of sendmmsg from one thread pinned to cpu:
// for warmup (not counted), then for interval, with snap taken on the same
// thread at both ends of the interval. Sending pauses while snap runs.
func blast(ctx context.Context, fd, cpu, batch int, frame []byte, warmup, interval time.Duration,
	snap func() (snapshot, error)) (window, error) {
	iov := make([]unix.Iovec, batch)
	msgs := make([]mmsghdr, batch)
	for i := range msgs {
		iov[i].Base = &frame[0]
		iov[i].SetLen(len(frame))
		msgs[i].hdr.Iov = &iov[i]
		msgs[i].hdr.Iovlen = 1
	}
	type result struct {
		w   window
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the pinned thread exits with the goroutine.
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			done <- result{err: fmt.Errorf("pin sender to CPU %d: %w", cpu, err)}
			return
		}
		runtime.Gosched()
		var w window
		var t0 time.Time
		var ru0, ru1 unix.Rusage
		timed := false
		deadline := time.Now().Add(warmup)
		for i := 0; ; i++ {
			n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(batch), 0, 0, 0)
			var ok, refused uint64
			switch {
			case errno == 0:
				ok = uint64(n)
				if ok < uint64(batch) {
					refused = 1
				}
			case errno == unix.ENOBUFS:
				refused = 1
			case errno == unix.EAGAIN || errno == unix.EINTR:
			default:
				done <- result{err: fmt.Errorf("sendmmsg: %w", errno)}
				return
			}
			w.sentAll, w.refusedAll = w.sentAll+ok, w.refusedAll+refused
			if timed {
				w.sent, w.refused = w.sent+ok, w.refused+refused
			}
			if i&7 != 0 {
				continue
			}
			now := time.Now()
			if !now.After(deadline) {
				continue
			}
			if err := ctx.Err(); err != nil {
				done <- result{err: err}
				return
			}
			var err error
			if !timed {
				if w.before, err = snap(); err != nil {
					done <- result{err: err}
					return
				}
				unix.Getrusage(unix.RUSAGE_THREAD, &ru0)
				timed, t0 = true, time.Now()
				deadline = t0.Add(interval)
				continue
			}
			w.wall = now.Sub(t0)
			unix.Getrusage(unix.RUSAGE_THREAD, &ru1)
			w.thread = time.Duration(unix.TimevalToNsec(ru1.Utime) - unix.TimevalToNsec(ru0.Utime) +
				unix.TimevalToNsec(ru1.Stime) - unix.TimevalToNsec(ru0.Stime))
			w.preempted = ru1.Nivcsw - ru0.Nivcsw
			w.after, err = snap()
			done <- result{w: w, err: err}
			return
		}
	}()
	r := <-done
	runtime.KeepAlive(iov)
	runtime.KeepAlive(msgs)
	runtime.KeepAlive(frame)
	return r.w, r.err
}

// cpuTimes are one CPU's /proc/stat times, in USER_HZ ticks.
type cpuTimes struct{ busy, softirq, steal, total uint64 }

// readCPUTimes reads the times of the given CPUs (-1: all CPUs together).
func readCPUTimes(cpus ...int) ([]cpuTimes, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	all := map[int]cpuTimes{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 9 || !strings.HasPrefix(fl[0], "cpu") {
			continue
		}
		n := -1 // the "cpu" line: all CPUs
		if fl[0] != "cpu" {
			var err error
			if n, err = strconv.Atoi(fl[0][3:]); err != nil {
				continue
			}
		}
		var v [8]uint64 // user nice system idle iowait irq softirq steal
		for i := range v {
			v[i], _ = strconv.ParseUint(fl[i+1], 10, 64)
		}
		all[n] = cpuTimes{
			busy:    v[0] + v[1] + v[2] + v[5] + v[6],
			softirq: v[6],
			steal:   v[7],
			total:   v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7],
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	out := make([]cpuTimes, len(cpus))
	for i, c := range cpus {
		t, ok := all[c]
		if !ok {
			return nil, fmt.Errorf("/proc/stat: no line for CPU %d", c)
		}
		out[i] = t
	}
	return out, nil
}

// waitQuiet waits, up to max, until the machine's CPUs have been at most
// 10 % busy for 250 ms, so that a run does not start in the middle of
// someone else's load. It reports whether they were.
func waitQuiet(ctx context.Context, max time.Duration) (bool, error) {
	end := time.Now().Add(max)
	for {
		a, err := readCPUTimes(-1)
		if err != nil {
			return false, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		b, err := readCPUTimes(-1)
		if err != nil {
			return false, err
		}
		if cpuUse(a[0], b[0]).Busy <= 0.10 {
			return true, nil
		}
		if time.Now().After(end) {
			return false, nil
		}
	}
}

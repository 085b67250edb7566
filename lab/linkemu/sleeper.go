package linkemu

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// A sleeper waits until a point in time, to within tens of microseconds.
//
// The runtime's timers are no good for this: with nothing else to wake
// the scheduler they fire up to a millisecond late (the poller waits in
// whole milliseconds). Nor is nanosleep: a goroutine in a system call
// holds its processor until sysmon takes it away, which can take
// milliseconds, and with GOMAXPROCS=2 two sleeping senders stall the
// whole process. A timerfd waited on through the runtime's poller has the
// kernel's high-resolution timers and holds no processor. What remains,
// the wake-up's latency (margin), is spun away.
//
// The margin follows a high quantile of that latency, not its median: a
// frame whose wake-up overshoots the margin leaves late, so a median
// margin makes half the frames late. On the lab's VMs a timer wake-up
// takes 80 to 250 µs (p10 to p95, idle, measured with a timerfd and with
// nanosleep alike: the hypervisor's timer, not the Go runtime), which the
// old 100 µs cap could never cover. The spin yields the processor
// (runtime.Gosched) on every turn, so a long margin costs CPU time but
// does not keep the readers, or the other direction, from running.
type sleeper struct {
	file   *os.File
	conn   syscall.RawConn
	margin time.Duration
	spec   unix.ItimerSpec
	buf    [8]byte
	read   func(fd uintptr) bool
	arm    func(fd uintptr)
	armErr error
}

// The margin moves up by marginUp after a wake-up that overshot it and
// down by marginDown after one that did not, so it settles where
// marginDown/(marginUp+marginDown), 2%, of the wake-ups overshoot it:
// near the 98th percentile. It starts near there for the lab's VMs, so
// that the first frames of a link are not the late ones. maxMargin
// bounds the spin when a busy machine makes every wake-up late; a frame
// then leaves late rather than the relay spinning without end.
const (
	minMargin   = 5 * time.Microsecond
	maxMargin   = 500 * time.Microsecond
	startMargin = 250 * time.Microsecond
	marginUp    = 49 * time.Microsecond
	marginDown  = time.Microsecond
)

func newSleeper() (*sleeper, error) {
	fd, err := unix.TimerfdCreate(unix.CLOCK_MONOTONIC, unix.TFD_NONBLOCK|unix.TFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	f := os.NewFile(uintptr(fd), "timerfd")
	conn, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("timerfd: %w", err)
	}
	s := &sleeper{file: f, conn: conn, margin: startMargin}
	s.read = func(fd uintptr) bool {
		_, err := unix.Read(int(fd), s.buf[:])
		return err != unix.EAGAIN
	}
	s.arm = func(fd uintptr) { s.armErr = unix.TimerfdSettime(int(fd), 0, &s.spec, nil) }
	return s, nil
}

// Close ends a wait in progress and every later one.
func (s *sleeper) Close() error { return s.file.Close() }

// until returns true at due, or false once the sleeper is closed.
func (s *sleeper) until(due time.Time) bool {
	for {
		d := time.Until(due)
		if d <= 0 {
			return true
		}
		if d <= s.margin {
			for time.Now().Before(due) {
				runtime.Gosched()
			}
			return true
		}
		want := d - s.margin
		s.spec.Value = unix.NsecToTimespec(int64(want))
		start := time.Now()
		// Arming fails only on a closed or broken timerfd.
		if err := s.conn.Control(s.arm); err != nil || s.armErr != nil {
			return false
		}
		if err := s.conn.Read(s.read); err != nil {
			return false
		}
		// A quantile, not the mean: one wake-up made very late (by a
		// page fault, a busy machine) moves the margin by one step, not
		// by its lateness.
		if time.Since(start)-want > s.margin {
			s.margin = min(s.margin+marginUp, maxMargin)
		} else {
			s.margin = max(s.margin-marginDown, minMargin)
		}
	}
}

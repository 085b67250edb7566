package linkemu

import (
	"fmt"
	"os"
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
// the wake-up's usual latency (margin), is spun away.
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

const (
	minMargin  = 5 * time.Microsecond
	maxMargin  = 100 * time.Microsecond
	marginStep = 2 * time.Microsecond
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
	s := &sleeper{file: f, conn: conn, margin: 30 * time.Microsecond}
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
		// Track the median overshoot, not the mean: a wake-up made late
		// by a busy machine must not make later waits spin longer,
		// keeping the processors busier still.
		if time.Since(start)-want > s.margin {
			s.margin = min(s.margin+marginStep, maxMargin)
		} else {
			s.margin = max(s.margin-marginStep, minMargin)
		}
	}
}

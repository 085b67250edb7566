package apprun

import (
	"fmt"
	"os"
	"path/filepath"
)

// superviseLocked starts the supervisor of a run; in.mu is held. After
// Close, nothing supervises: the process runs on unwatched.
func (p *Process) superviseLocked(in *instance, r *run) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	in.cancel, in.superDone = make(chan struct{}), make(chan struct{})
	p.wg.Add(1)
	go p.supervise(in, in.cancel, in.superDone, r)
}

func closed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// supervise waits for the instance's process to end and applies the
// restart policy, with exponential backoff between restarts, until the
// policy says no, Stop cancels it, or the runtime closes.
func (p *Process) supervise(in *instance, cancel, done chan struct{}, r *run) {
	defer p.wg.Done()
	defer close(done)
	failures := 0
	for {
		select {
		case <-r.done:
		case <-cancel:
			return
		case <-p.done:
			return
		}
		in.mu.Lock()
		if closed(cancel) || p.isClosed() {
			in.mu.Unlock()
			return
		}
		desc := r.desc
		if n := p.cg.oomKills(in.key); n > in.oomBase {
			desc += " (out of memory)"
			in.oomBase = n
		}
		in.cur = nil
		_ = os.Remove(filepath.Join(in.dir, runFile))
		ran := p.clock.Now().Sub(r.started)
		state := StateFailed
		if r.ok {
			state = StateStopped
		}
		if in.spec.Restart == RestartNever || in.spec.Restart == RestartOnFailure && r.ok {
			in.want, in.cancel = false, nil
			in.state, in.message = state, desc
			in.exit = &exitRecord{State: state, Message: desc}
			if err := p.saveRecord(in); err != nil {
				p.log.Warn("save instance state", "instance", in.id, "err", err)
			}
			in.mu.Unlock()
			p.log.Info("instance exited", "instance", in.id, "how", desc, "policy", in.spec.Restart)
			return
		}
		if ran >= p.cfg.Backoff.ResetAfter {
			failures = 0
		}
		failures++
		delay := p.cfg.Backoff.Delay(failures)
		in.state, in.message = state, fmt.Sprintf("%s; restarting in %s", desc, delay)
		in.mu.Unlock()
		p.log.Warn("instance exited", "instance", in.id, "how", desc, "restartIn", delay)
		for {
			select {
			case <-p.clock.After(delay):
			case <-cancel:
				return
			case <-p.done:
				return
			}
			in.mu.Lock()
			if closed(cancel) || p.isClosed() {
				in.mu.Unlock()
				return
			}
			nr, err := p.launch(in)
			if err == nil {
				in.restarts++
				in.state, in.message = StateRunning, "restarted after: "+desc
				if err := p.saveRecord(in); err != nil {
					p.log.Warn("save instance state", "instance", in.id, "err", err)
				}
				in.mu.Unlock()
				r = nr
				break
			}
			failures++
			delay = p.cfg.Backoff.Delay(failures)
			in.state, in.message = StateFailed, fmt.Sprintf("restart failed: %v; retrying in %s", err, delay)
			in.mu.Unlock()
			p.log.Error("restart instance", "instance", in.id, "err", err, "retryIn", delay)
		}
	}
}

package linkemu

import (
	"errors"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ring is a FIFO that grows as needed.
type ring[T any] struct {
	buf        []T
	head, size int
}

func (r *ring[T]) len() int { return r.size }

func (r *ring[T]) push(v T) {
	if r.size == len(r.buf) {
		n := make([]T, max(16, 2*len(r.buf)))
		for i := 0; i < r.size; i++ {
			n[i] = r.buf[(r.head+i)%len(r.buf)]
		}
		r.buf, r.head = n, 0
	}
	r.buf[(r.head+r.size)%len(r.buf)] = v
	r.size++
}

func (r *ring[T]) front() T { return r.buf[r.head] }

func (r *ring[T]) pop() T {
	var zero T
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return v
}

// frame is a held frame: the bytes and when they leave. buf is the whole
// buffer the frame was read into, to be reused.
type frame struct {
	data, buf []byte
	due       time.Time
}

// pipe is one direction of a link: frames read from in leave through out.
type pipe struct {
	name    string
	log     *slog.Logger
	params  atomic.Pointer[Params]
	counts  counters
	bufSize int
	in      *receiver
	out     *sender
	sleep   *sleeper
	done    <-chan struct{}

	mu    sync.Mutex
	held  ring[frame]
	free  [][]byte
	wake  chan struct{}
	first sync.Once // logs the first write error

	// The reader's own state.
	rng     *rand.Rand
	lastDue time.Time
}

func newPipe(name string, p Params, in, out *packetSocket, sl *sleeper, bufSize int, seed uint64, done <-chan struct{}, log *slog.Logger) *pipe {
	pp := &pipe{
		sleep:   sl,
		name:    name,
		log:     log,
		bufSize: bufSize,
		in:      newReceiver(in),
		out:     newSender(out),
		done:    done,
		wake:    make(chan struct{}, 1),
		rng:     rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	pp.params.Store(&p)
	return pp
}

func (p *pipe) getBuf() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b
	}
	return make([]byte, p.bufSize)
}

// receive reads frames and queues them until the pipe is done.
func (p *pipe) receive() {
	buf := p.getBuf()
	for {
		data, arrival, err := p.in.recv(buf)
		if err != nil {
			select {
			case <-p.done:
				return
			default:
			}
			if errors.Is(err, errTooLarge) {
				p.counts.errors.Add(1)
				continue
			}
			// The interface went away under us: nothing more will come.
			p.log.Warn("linkemu: read failed, direction stops", "dir", p.name, "err", err)
			<-p.done
			return
		}
		if p.admit(arrival, len(data)) {
			continue
		}
		due := p.lastDue
		p.mu.Lock()
		wasEmpty := p.held.len() == 0
		p.held.push(frame{data: data, buf: buf, due: due})
		n := p.held.len()
		p.mu.Unlock()
		if int64(n) > p.counts.maxQueue.Load() {
			p.counts.maxQueue.Store(int64(n))
		}
		if wasEmpty {
			select {
			case p.wake <- struct{}{}:
			default:
			}
		}
		buf = p.getBuf()
	}
}

// admit decides the fate of a frame of n bytes that arrived at arrival:
// it reports true to drop it, or sets p.lastDue to when it leaves.
func (p *pipe) admit(arrival time.Time, n int) (drop bool) {
	par := p.params.Load()
	if par.LossPct > 0 && p.rng.Float64()*100 < par.LossPct {
		p.counts.lost.Add(1)
		return true
	}
	p.mu.Lock()
	held := p.held.len()
	p.mu.Unlock()
	if held >= maxHeld {
		p.counts.queueDrops.Add(1)
		return true
	}
	// The rate was applied before the relay, by the kernel (see shape).
	sent := arrival
	delay := par.Delay
	if par.Jitter > 0 {
		delay += time.Duration(p.rng.Int64N(2*int64(par.Jitter)+1)) - par.Jitter
	}
	due := sent.Add(max(delay, 0))
	if due.Before(p.lastDue) {
		due = p.lastDue
	}
	p.lastDue = due
	return false
}

// next waits for the frame at the head of the queue, without taking it.
func (p *pipe) next() (frame, bool) {
	for {
		p.mu.Lock()
		if p.held.len() > 0 {
			f := p.held.front()
			p.mu.Unlock()
			return f, true
		}
		p.mu.Unlock()
		select {
		case <-p.wake:
		case <-p.done:
			return frame{}, false
		}
	}
}

// transmit writes frames out when they are due, until the pipe is done.
func (p *pipe) transmit() {
	for {
		f, ok := p.next()
		if !ok || !p.sleep.until(f.due) {
			return
		}
		late := time.Since(f.due)
		p.counts.late.add(late)
		if int64(late) > p.counts.maxLate.Load() {
			p.counts.maxLate.Store(int64(late))
		}
		if err := p.out.send(f.data); err != nil {
			p.counts.errors.Add(1)
			p.first.Do(func() { p.log.Warn("linkemu: write failed", "dir", p.name, "err", err) })
		} else {
			p.counts.relayed.Add(1)
		}
		p.mu.Lock()
		p.held.pop()
		if len(p.free) < 256 {
			p.free = append(p.free, f.buf)
		}
		p.mu.Unlock()
	}
}

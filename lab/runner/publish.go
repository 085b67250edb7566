package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/mecorch/mecorch/traffic/netns"
)

// Publish makes a node's TCP port reachable at listen in the runner's own
// namespace (typically 127.0.0.1:8080 on the host), the way containerlab's
// `ports` publishes a container's port: each connection accepted is joined
// to one made from inside the node's namespace to target (an address the
// node listens on, e.g. 127.0.0.1:8080). It runs until ctx ends or the
// returned closer is closed.
func (l *Lab) Publish(ctx context.Context, listen, node, target string) (io.Closer, error) {
	if l.t.Node(node) == nil {
		return nil, fmt.Errorf("publish: no node %q in lab %s", node, l.t.Name)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("publish %s of node %s: %w", target, node, err)
	}
	path := l.NetnsPath(node)
	p := &publisher{ln: ln}
	p.stopWatch = context.AfterFunc(ctx, func() { _ = p.Close() })
	go p.serve(ctx, path, target, l.opts.Logger)
	return p, nil
}

type publisher struct {
	ln   net.Listener
	wg   sync.WaitGroup
	once sync.Once

	mu        sync.Mutex
	active    map[net.Conn]bool
	closed    bool
	stopWatch func() bool
}

// Close stops listening and ends the connections in flight.
func (p *publisher) Close() error {
	var err error
	p.once.Do(func() {
		if p.stopWatch != nil {
			p.stopWatch()
		}
		err = p.ln.Close()
		p.mu.Lock()
		p.closed = true
		for c := range p.active {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return err
}

// track adds c to the connections Close ends; false if Close ran already.
func (p *publisher) track(c net.Conn) bool { return p.add(c, false) }

// accept is track for an accepted connection, which is also counted in wg
// under the lock Close takes, so that Close's Wait sees its goroutine.
func (p *publisher) accept(c net.Conn) bool { return p.add(c, true) }

func (p *publisher) add(c net.Conn, count bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.active == nil {
		p.active = map[net.Conn]bool{}
	}
	if count {
		p.wg.Add(1)
	}
	p.active[c] = true
	return true
}

func (p *publisher) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.active, c)
	p.mu.Unlock()
}

func (p *publisher) serve(ctx context.Context, path, target string, log interface {
	Warn(string, ...any)
}) {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) && log != nil {
				log.Warn("publish: accept", "err", err)
			}
			return
		}
		if !p.accept(c) {
			c.Close()
			return
		}
		go func() {
			defer p.wg.Done()
			defer c.Close()
			defer p.untrack(c)
			var up net.Conn
			err := netns.Do(path, func() error {
				var err error
				up, err = (&net.Dialer{}).DialContext(ctx, "tcp", target)
				return err
			})
			if err != nil {
				if log != nil {
					log.Warn("publish: dial inside the node", "target", target, "err", err)
				}
				return
			}
			defer up.Close()
			if !p.track(up) {
				return
			}
			defer p.untrack(up)
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); closeWrite(up); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); closeWrite(c); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

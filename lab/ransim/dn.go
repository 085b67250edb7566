package ransim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
)

// NameSeparator ends the name a DN puts before its answers.
const NameSeparator = '|'

// DNConfig configures a data-network echo server.
type DNConfig struct {
	// Addr is where it listens, for UDP and (with TCP) TCP; default ":7".
	Addr string
	// Name, if set, prefixes every answer as Name + "|", so that a UE (or
	// a test) can tell which server answered: the central DN or an edge
	// instance that traffic was steered to.
	Name string
	// TCP adds a TCP echo: line by line with a Name, byte for byte
	// without.
	TCP bool
}

// DNStats counts what a DN did.
type DNStats struct {
	UDPAnswers int64 `json:"udpAnswers"`
	TCPConns   int64 `json:"tcpConns"`
}

// DN is a UDP (and TCP) echo server.
type DN struct {
	cfg   DNConfig
	log   *slog.Logger
	udp   *net.UDPConn
	tcp   net.Listener
	udpN  atomic.Int64
	tcpN  atomic.Int64
	close sync.Once
}

// NewDN opens the DN's sockets.
func NewDN(cfg DNConfig, log *slog.Logger) (*DN, error) {
	if cfg.Addr == "" {
		cfg.Addr = ":7"
	}
	for _, c := range cfg.Name {
		if c == NameSeparator || c == '\n' {
			return nil, fmt.Errorf("dn: name %q must not hold %q or a newline", cfg.Name, NameSeparator)
		}
	}
	ua, err := net.ResolveUDPAddr("udp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("dn: address %q: %w", cfg.Addr, err)
	}
	d := &DN{cfg: cfg, log: log}
	if d.udp, err = net.ListenUDP("udp", ua); err != nil {
		return nil, fmt.Errorf("dn: listen udp %s: %w", cfg.Addr, err)
	}
	if cfg.TCP {
		// The same port as UDP, also when Addr asked for any port.
		host, _, _ := net.SplitHostPort(cfg.Addr)
		at := net.JoinHostPort(host, strconv.Itoa(d.UDPAddr().Port))
		if d.tcp, err = net.Listen("tcp", at); err != nil {
			d.udp.Close()
			return nil, fmt.Errorf("dn: listen tcp %s: %w", at, err)
		}
	}
	return d, nil
}

// UDPAddr is the UDP address the DN answers on.
func (d *DN) UDPAddr() *net.UDPAddr { return d.udp.LocalAddr().(*net.UDPAddr) }

// TCPAddr is the TCP address, nil without TCP.
func (d *DN) TCPAddr() net.Addr {
	if d.tcp == nil {
		return nil
	}
	return d.tcp.Addr()
}

// Stats returns the counters.
func (d *DN) Stats() DNStats { return DNStats{UDPAnswers: d.udpN.Load(), TCPConns: d.tcpN.Load()} }

// Close closes the sockets; Run returns.
func (d *DN) Close() error {
	d.close.Do(func() {
		d.udp.Close()
		if d.tcp != nil {
			d.tcp.Close()
		}
	})
	return nil
}

// Run answers until ctx ends.
func (d *DN) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { d.Close() })
	defer stop()
	defer d.Close()
	var wg sync.WaitGroup
	if d.tcp != nil {
		wg.Go(func() { d.serveTCP(ctx) })
	}
	err := d.serveUDP()
	d.Close()
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (d *DN) serveUDP() error {
	buf := make([]byte, 64<<10)
	out := make([]byte, 0, 64<<10+len(d.cfg.Name)+1)
	for {
		n, from, err := d.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("dn: read: %w", err)
		}
		out = out[:0]
		if d.cfg.Name != "" {
			out = append(append(out, d.cfg.Name...), NameSeparator)
		}
		out = append(out, buf[:n]...)
		if _, err := d.udp.WriteToUDPAddrPort(out, from); err != nil {
			d.log.Debug("dn: answer", "to", from, "err", err)
			continue
		}
		d.udpN.Add(1)
	}
}

func (d *DN) serveTCP(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := d.tcp.Accept()
		if err != nil {
			return
		}
		d.tcpN.Add(1)
		stop := context.AfterFunc(ctx, func() { c.Close() })
		wg.Go(func() {
			defer stop()
			defer c.Close()
			d.echoTCP(c)
		})
	}
}

func (d *DN) echoTCP(c net.Conn) {
	if d.cfg.Name == "" {
		_, _ = io.Copy(c, c)
		return
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 {
			if _, werr := c.Write(append([]byte(d.cfg.Name+string(NameSeparator)), line...)); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

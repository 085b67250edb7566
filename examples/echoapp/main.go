// Command echoapp is a MEC app for tests and demos that needs nothing but
// itself: it sends back whatever a client sends, on TCP and UDP port
// $ECHO_PORT (7 by default), and stops cleanly on SIGTERM. The mec-agent
// integration tests package it as the software image of edge-echo.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

func main() {
	port := os.Getenv("ECHO_PORT")
	if port == "" {
		port = "7"
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, ":"+port); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// One UDP socket per family, each told the address a datagram was
	// sent to: the answer leaves from that address. A device reaches the
	// app at a service address (on the instance's lo, from its DNS rule),
	// and an answer from the instance's own interface address would be
	// from a stranger to the device's socket.
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		ln.Close()
		return err
	}
	c4, err := net.ListenPacket("udp4", "0.0.0.0:"+port)
	if err != nil {
		ln.Close()
		return err
	}
	p4 := ipv4.NewPacketConn(c4)
	if err := p4.SetControlMessage(ipv4.FlagDst, true); err != nil {
		ln.Close()
		c4.Close()
		return err
	}
	c6, err := net.ListenPacket("udp6", "[::]:"+port)
	if err != nil {
		ln.Close()
		c4.Close()
		return err
	}
	p6 := ipv6.NewPacketConn(c6)
	if err := p6.SetControlMessage(ipv6.FlagDst, true); err != nil {
		ln.Close()
		c4.Close()
		c6.Close()
		return err
	}
	fmt.Printf("echoapp: instance %s serving TCP and UDP on %s\n", os.Getenv("MEC_INSTANCE_ID"), addr)
	go func() {
		<-ctx.Done()
		ln.Close()
		c4.Close()
		c6.Close()
	}()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, cm, from, err := p4.ReadFrom(buf)
			if err != nil {
				return
			}
			var out *ipv4.ControlMessage
			if cm != nil {
				out = &ipv4.ControlMessage{Src: cm.Dst}
			}
			_, _ = p4.WriteTo(buf[:n], out, from)
		}
	}()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, cm, from, err := p6.ReadFrom(buf)
			if err != nil {
				return
			}
			var out *ipv6.ControlMessage
			if cm != nil {
				out = &ipv6.ControlMessage{Src: cm.Dst}
			}
			_, _ = p6.WriteTo(buf[:n], out, from)
		}
	}()
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			fmt.Println("echoapp: stopping")
			return nil
		}
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			_, _ = io.Copy(c, c)
		}()
	}
}

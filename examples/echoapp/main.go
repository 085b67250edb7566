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
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		ln.Close()
		return err
	}
	fmt.Printf("echoapp: instance %s serving TCP and UDP on %s\n", os.Getenv("MEC_INSTANCE_ID"), addr)
	go func() {
		<-ctx.Done()
		ln.Close()
		pc.Close()
	}()
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = pc.WriteTo(buf[:n], from)
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

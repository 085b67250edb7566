// Command echoapp is the app instance of apprun's tests: it answers every
// TCP connection with its MEC_INSTANCE_ID, and misbehaves on request.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	port := flag.Int("port", 7000, "TCP port to listen on")
	crashOnce := flag.String("crash-once", "", "exit 3 if this file is missing, after creating it")
	exitAfter := flag.Duration("exit-after", 0, "exit after this long (0: never)")
	exitCode := flag.Int("exit-code", 0, "status for -exit-after")
	alloc := flag.Int("alloc-mib", 0, "allocate and touch this many MiB, then hold them")
	ignoreTerm := flag.Bool("ignore-term", false, "ignore SIGTERM")
	logBytes := flag.Int("log-bytes", 0, "write this many bytes of log lines, then log-done")
	burn := flag.Bool("burn", false, "spin on a CPU")
	daemon := flag.Bool("daemon", false, "leave a sleep behind in a session of its own")
	tryOpen := flag.String("try-open", "", "comma-separated files to open at start, each reported in the log")
	flag.Parse()

	id, addr := os.Getenv("MEC_INSTANCE_ID"), os.Getenv("MEC_ADDRESS")
	fmt.Printf("echoapp pid %d id %s address %s\n", os.Getpid(), id, addr)
	for _, path := range strings.FieldsFunc(*tryOpen, func(r rune) bool { return r == ',' }) {
		if f, err := os.Open(path); err != nil {
			fmt.Printf("try-open %s: %v\n", path, err)
		} else {
			f.Close()
			fmt.Printf("try-open %s: ok\n", path)
		}
	}
	if *ignoreTerm {
		signal.Ignore(syscall.SIGTERM)
	}
	if *crashOnce != "" {
		if _, err := os.Stat(*crashOnce); err != nil {
			_ = os.WriteFile(*crashOnce, nil, 0o644)
			fmt.Fprintln(os.Stderr, "crashing once")
			os.Exit(3)
		}
	}
	if *logBytes > 0 {
		line := strings.Repeat("x", 99) + "\n"
		for n := 0; n < *logBytes; n += len(line) {
			fmt.Print(line)
		}
		fmt.Println("log-done")
	}
	if *daemon {
		d := exec.Command("sleep", "300")
		d.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := d.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Printf("daemon %d\n", d.Process.Pid)
	}
	if *burn {
		go func() {
			for {
			}
		}()
	}
	var held [][]byte
	for i := 0; i < *alloc; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		held = append(held, b)
	}
	if *exitAfter > 0 {
		go func() {
			time.Sleep(*exitAfter)
			fmt.Fprintf(os.Stderr, "exiting with %d\n", *exitCode)
			os.Exit(*exitCode)
		}()
	}
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", *port))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	for n := 1; ; n++ {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		fmt.Printf("served %d\n", n)
		fmt.Fprintln(c, id)
		c.Close()
		_ = held
	}
}

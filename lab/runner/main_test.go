package runner

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/lab/topology"
	"github.com/mecorch/mecorch/traffic/netns"
)

// The test binary plays two more parts, chosen by RUNNER_TEST_ROLE: a
// node's cmd (a UDP echo server), and a runner that the crash test kills.
func TestMain(m *testing.M) {
	switch os.Getenv("RUNNER_TEST_ROLE") {
	case "echo":
		os.Exit(echoServer(os.Getenv("RUNNER_TEST_ADDR")))
	case "runner":
		os.Exit(crashingRunner())
	}
	os.Exit(m.Run())
}

func echoServer(addr string) int {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "echo:", err)
		return 1
	}
	buf := make([]byte, 2048)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "echo:", err)
			return 1
		}
		_, _ = pc.WriteTo(buf[:n], from)
	}
}

// crashingRunner brings a lab up, says so on stdout, and waits to be
// killed.
func crashingRunner() int {
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	t := threeNodes(os.Getenv("RUNNER_TEST_LAB"), exe)
	_, err = Up(context.Background(), t, Options{
		StateDir: os.Getenv("RUNNER_TEST_STATE"), NetnsDir: os.Getenv("RUNNER_TEST_NETNS"),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "up:", err)
		return 1
	}
	fmt.Println("ready")
	select {}
}

// requireRoot skips a test that needs CAP_SYS_ADMIN and CAP_NET_ADMIN
// when they are missing, except under CI=true, where it fails: a green
// CI run must mean the test really ran.
func requireRoot(t *testing.T) {
	t.Helper()
	if checkPrivileges() == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN); CI=true forbids skipping")
	}
	t.Skip("needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN)")
}

// labName is unique per test, so tests never meet each other's
// namespaces, here or on a machine running other labs.
func labName(t *testing.T) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "rt" + hex.EncodeToString(b)
}

// testOptions gives a test its own state and netns directories. The
// cleanup removes whatever lab is left (a failed test's) and reports any
// namespace it had to remove.
func testOptions(t *testing.T) Options {
	t.Helper()
	requireRoot(t)
	o := Options{
		StateDir: t.TempDir(), NetnsDir: t.TempDir(),
		Logger:     slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		StopGrace:  time.Second,
		RestartMin: 50 * time.Millisecond, RestartMax: 500 * time.Millisecond,
	}
	t.Cleanup(func() {
		names, _ := netns.List(o.NetnsDir, "")
		for _, n := range names {
			t.Errorf("netns %s left behind", n)
		}
		if len(names) > 0 {
			paths := make([]string, len(names))
			for i, n := range names {
				paths[i] = netns.Path(o.NetnsDir, n)
			}
			_ = killProcs(context.Background(), paths, 0)
			for _, n := range names {
				_ = netns.Delete(o.NetnsDir, n)
			}
		}
		_ = unix.Unmount(o.NetnsDir, unix.MNT_DETACH)
	})
	return o
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// threeNodes is a—b—c with b routing between two subnets, in IPv4 and
// IPv6, and c running a UDP echo server on port 7777 as its cmd.
func threeNodes(lab, exe string) *topology.Topology {
	return &topology.Topology{
		Name: lab,
		Nodes: []*topology.Node{
			{Name: "a", Kind: "linux", Exec: []string{
				"ip route add 10.0.2.0/24 via 10.0.1.2",
				"ip -6 route add fd00:2::/64 via fd00:1::2",
			}},
			{Name: "b", Kind: "linux", Exec: []string{
				"sysctl -w net.ipv4.ip_forward=1",
				"echo 1 > /proc/sys/net/ipv6/conf/all/forwarding",
			}},
			{
				Name: "c", Kind: "linux",
				Exec: []string{
					"ip route add 10.0.1.0/24 via 10.0.2.2",
					"ip -6 route add fd00:1::/64 via fd00:2::2",
				},
				Cmd: "exec '" + exe + "'",
				Env: map[string]string{"RUNNER_TEST_ROLE": "echo", "RUNNER_TEST_ADDR": ":7777"},
			},
		},
		Links: []*topology.Link{
			{
				A:   topology.Endpoint{Node: "a", Iface: "eth1", Addr: pfx("10.0.1.1/24"), Addr6: pfx("fd00:1::1/64"), MAC: "02:00:00:00:01:01"},
				B:   topology.Endpoint{Node: "b", Iface: "eth1", Addr: pfx("10.0.1.2/24"), Addr6: pfx("fd00:1::2/64")},
				MTU: 1400,
			},
			{
				A: topology.Endpoint{Node: "b", Iface: "eth2", Addr: pfx("10.0.2.2/24"), Addr6: pfx("fd00:2::2/64")},
				B: topology.Endpoint{Node: "c", Iface: "eth1", Addr: pfx("10.0.2.3/24"), Addr6: pfx("fd00:2::3/64")},
			},
		},
	}
}

func testExe(t *testing.T) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// echo sends a datagram from the namespace on nsPath to addr until it
// comes back or timeout passes; it returns the round trip of the exchange
// that succeeded.
func echo(nsPath, addr string, timeout time.Duration) (time.Duration, error) {
	var conn net.Conn
	err := netns.Do(nsPath, func() (err error) {
		conn, err = net.Dial("udp", addr)
		return err
	})
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 64)
	last := errors.New("no answer")
	for i := 0; time.Now().Before(deadline); i++ {
		msg := fmt.Sprintf("ping %d", i)
		sent := time.Now()
		if _, err := conn.Write([]byte(msg)); err != nil {
			last = err
			time.Sleep(100 * time.Millisecond)
			continue
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				last = err
				if errors.Is(err, unix.ECONNREFUSED) {
					time.Sleep(100 * time.Millisecond)
				}
				break
			}
			if string(buf[:n]) == msg {
				return time.Since(sent), nil
			}
		}
	}
	return 0, fmt.Errorf("udp echo %s from %s: %w", addr, nsPath, last)
}

// waitFor polls cond until it holds or 15s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive tells whether pid is a running (not zombie) process.
func alive(pid int) bool { return procStartTicks(pid) != 0 }

// hostLinks is the set of link names in the test's own namespace.
func hostLinks(t *testing.T) map[string]bool {
	t.Helper()
	ls, err := netns.Links("", "", "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, l := range ls {
		out[l] = true
	}
	return out
}

// waitLine reads a child's stdout until the line want.
func waitLine(r *bufio.Reader, want string, timeout time.Duration) error {
	got := make(chan error, 1)
	go func() {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				got <- fmt.Errorf("child stdout ended before %q: %w", want, err)
				return
			}
			if strings.TrimSpace(line) == want {
				got <- nil
				return
			}
		}
	}()
	select {
	case err := <-got:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("no %q from the child in %v", want, timeout)
	}
}

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/mecorch/mecorch/lab/ransim"
	"github.com/mecorch/mecorch/traffic/netns"
)

// TestMain lets the test binary stand in for mec-labsim: with
// MEC_LABSIM_MAIN=1 it runs the command on its arguments.
func TestMain(m *testing.M) {
	if os.Getenv("MEC_LABSIM_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func TestHelpListsSubcommands(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, &out, &errOut); code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, sub := range []string{"dn ", "upf ", "gnb ", "ue "} {
		if !strings.Contains(out.String(), "mec-labsim "+sub) {
			t.Errorf("--help does not list %q:\n%s", sub, out.String())
		}
	}
	for _, tc := range []struct {
		args []string
		code int
	}{{nil, 2}, {[]string{"bogus"}, 2}, {[]string{"ue", "-h"}, 0}, {[]string{"upf"}, 2}, {[]string{"dn", "--nope"}, 2}, {[]string{"dn", "extra"}, 2}} {
		if code := run(tc.args, io.Discard, io.Discard); code != tc.code {
			t.Errorf("%q: exit %d, want %d", tc.args, code, tc.code)
		}
	}
}

func TestFlags(t *testing.T) {
	ue, f, c, err := parseUE(strings.Fields("--id ue1 --addr 10.45.0.2 --gnb 10.61.0.11 --cell 262-01-0000000a1 --dn 10.63.0.3:7 "+
		"--rate 50 --count 9 --handover-to 10.61.0.12:9000 --handover-cell 262-01-0000000b1 --handover-after 2s "+
		"--mecorch http://10.0.0.1:8080 --token-file /t --log-level debug"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if ue.ID != "ue1" || ue.Addr != netip.MustParseAddr("10.45.0.2") || ue.Port != 40000 || ue.GNB != "10.61.0.11" || ue.Cell != "262-01-0000000a1" ||
		ue.Target != netip.MustParseAddrPort("10.63.0.3:7") || ue.Rate != 50 || ue.Count != 9 ||
		*ue.Handover != (ransim.Handover{After: 2 * time.Second, GNB: "10.61.0.12:9000", Cell: "262-01-0000000b1"}) ||
		f.mecorch != "http://10.0.0.1:8080" || f.tokenFile != "/t" || c.logLevel != "debug" {
		t.Fatalf("ue %+v %+v %+v", ue, f, c)
	}
	g, c, err := parseGNB(strings.Fields("--name g1 --cell 262-01-0000000a1,262-01-0000000a2 --cell 262-01-0000000a3 --upf 10.62.0.2 "+
		"--session ue=10.45.0.2,ulteid=0x100 --session ue=10.45.0.3,ulteid=0x101,dlteid=0x201,qfi=5 --stats-interval 1s"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if g.Name != "g1" || len(g.Cells) != 3 || g.UPFAddr != "10.62.0.2" || len(g.Sessions) != 2 || g.Sessions[0].DLTEID != 0x1100 ||
		g.Sessions[1].QFI != 5 || g.RadioAddr != ":9000" || g.N3Addr != ":2152" || c.stats != time.Second {
		t.Fatalf("gnb %+v", g)
	}
	u, _, err := parseUPF(strings.Fields("--n3 10.62.0.2:2152 --n6-addr 10.63.0.2 --session ue=10.45.0.2,ulteid=0x100,gnb=10.62.0.11"), io.Discard)
	if err != nil || u.N3Addr != "10.62.0.2:2152" || u.N6Addr != "10.63.0.2" || u.Sessions[0].GNB != netip.MustParseAddrPort("10.62.0.11:2152") {
		t.Fatalf("upf %+v %v", u, err)
	}
	d, _, err := parseDN(strings.Fields("--listen 10.63.0.3:7 --name edge --tcp=false"), io.Discard)
	if err != nil || d.Addr != "10.63.0.3:7" || d.Name != "edge" || d.TCP {
		t.Fatalf("dn %+v %v", d, err)
	}
	for _, bad := range []string{
		"--gnb 1.2.3.4 --dn 1.2.3.4:7",
		"--addr fd00::2 --gnb 1.2.3.4 --dn 1.2.3.4:7",
		"--addr 10.45.0.2 --gnb 1.2.3.4 --dn 1.2.3.4",
		"--addr 10.45.0.2 --dn 1.2.3.4:7",
		"--addr 10.45.0.2 --gnb 1.2.3.4 --dn 1.2.3.4:7 --handover-to 1.2.3.5",
		"--addr 10.45.0.2 --gnb 1.2.3.4 --dn 1.2.3.4:7 --port 70000",
	} {
		if _, _, _, err := parseUE(strings.Fields(bad), io.Discard); err == nil {
			t.Errorf("ue %q accepted", bad)
		}
	}
	for _, bad := range []string{"--cell 262-01-0000000a1 --upf 1.2.3.4", "--upf 1.2.3.4 --session ue=10.45.0.2,ulteid=1", "--cell x --upf 1.2.3.4 --session bad"} {
		if _, _, err := parseGNB(strings.Fields(bad), io.Discard); err == nil {
			t.Errorf("gnb %q accepted", bad)
		}
	}
}

func TestWriteStats(t *testing.T) {
	var b bytes.Buffer
	if err := writeStats(&b, "gnb_stats", "g1", true, ransim.GNBStats{Uplink: 3}); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatalf("%q: %v", b.String(), err)
	}
	if m["type"] != "gnb_stats" || m["name"] != "g1" || m["final"] != true || m["uplink"] != 3.0 {
		t.Fatalf("%v", m)
	}
}

// buffer is a bytes.Buffer a child process and the test share.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// lines decodes the JSON lines of type kind.
func (b *buffer) lines(t *testing.T, kind string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(b.String()))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("stdout line %q: %v", sc.Text(), err)
		}
		if m["type"] == kind {
			out = append(out, m)
		}
	}
	return out
}

type proc struct {
	name           string
	cmd            *exec.Cmd
	stdout, stderr *buffer
	done           chan struct{} // closed when the process has exited, err set
	err            error
}

// startSim runs mec-labsim (this binary) in the namespace.
func startSim(t *testing.T, nsPath, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, stdout: &buffer{}, stderr: &buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(os.Args[0], args...)
	// Under -race a child would sleep a second at exit (atexit_sleep_ms).
	p.cmd.Env = append(append(os.Environ(), "MEC_LABSIM_MAIN=1", "GORACE=atexit_sleep_ms=0"), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := netns.StartCmd(nsPath, p.cmd); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.stderr.String())
		}
	})
	return p
}

func (p *proc) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stderr.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q:\n%s", p.name, s, p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *proc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("%s: %v\n%s", p.name, p.err, p.stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("%s ignored SIGTERM", p.name)
	}
}

// TestProcessesHandOver runs the command as a lab would: dn, upf, two
// gNBs and a UE as processes in a namespace of their own (on its
// loopback), the UE handing over and posting its cell change to a
// stand-in for mecorch with the token from $MECORCH_TOKEN.
func TestProcessesHandOver(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root for a network namespace; CI=true forbids skipping")
		}
		t.Skip("needs root for a network namespace")
	}
	dir := t.TempDir()
	path, err := netns.Create(dir, "labsim")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netns.Delete(dir, "labsim"); _ = unix.Unmount(dir, unix.MNT_DETACH) })
	h, err := netns.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	nh, err := netlink.NewHandleAt(h)
	h.Close()
	if err != nil {
		t.Fatal(err)
	}
	lo, err := nh.LinkByName("lo")
	if err == nil {
		err = nh.LinkSetUp(lo)
	}
	nh.Close()
	if err != nil {
		t.Fatal(err)
	}

	var posts []ransim.CellChange
	var mu sync.Mutex
	var ln net.Listener
	if err := netns.Do(path, func() (err error) { ln, err = net.Listen("tcp", "127.0.0.1:0"); return err }); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c ransim.CellChange
		if r.URL.Path != ransim.CellChangesPath || r.Header.Get("Authorization") != "Bearer tok" || json.NewDecoder(r.Body).Decode(&c) != nil {
			http.Error(w, "no", http.StatusBadRequest)
			return
		}
		mu.Lock()
		posts = append(posts, c)
		mu.Unlock()
	}))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)

	sess := "ue=10.45.0.2,ulteid=0x100,dlteid=0x200,qfi=9"
	dn := startSim(t, path, "dn", nil, "dn", "--listen", "127.0.0.3:7", "--name", "dn1")
	upf := startSim(t, path, "upf", nil, "upf", "--n3", "127.0.0.2:2152", "--n6-addr", "127.0.0.2", "--session", sess)
	gnb1 := startSim(t, path, "gnb1", nil, "gnb", "--name", "gnb1", "--cell", "262-01-0000000a1", "--radio", "127.0.0.11:9000",
		"--n3", "127.0.0.11:2152", "--upf", "127.0.0.2", "--session", sess)
	gnb2 := startSim(t, path, "gnb2", nil, "gnb", "--name", "gnb2", "--cell", "262-01-0000000b1", "--radio", "127.0.0.12:9000",
		"--n3", "127.0.0.12:2152", "--upf", "127.0.0.2", "--session", sess)
	dn.waitLog(t, "dn: serving")
	upf.waitLog(t, "upf: serving")
	gnb1.waitLog(t, "gnb: serving")
	gnb2.waitLog(t, "gnb: serving")
	ue := startSim(t, path, "ue", []string{"MECORCH_TOKEN=tok"}, "ue", "--id", "ue1", "--addr", "10.45.0.2", "--gnb", "127.0.0.11",
		"--cell", "262-01-0000000a1", "--dn", "127.0.0.3:7", "--rate", "50", "--count", "60", "--timeout", "3s",
		"--report-interval", "300ms", "--handover-to", "127.0.0.12:9000", "--handover-cell", "262-01-0000000b1",
		"--handover-after", "600ms", "--mecorch", srv.URL)
	select {
	case <-ue.done:
		if ue.err != nil {
			t.Fatalf("ue: %v\n%s", ue.err, ue.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the UE did not finish")
	}
	final := ue.stdout.lines(t, "final")
	if len(final) != 1 || final[0]["received"] != 60.0 || final[0]["lost"] != 0.0 || final[0]["cell"] != "262-01-0000000b1" {
		t.Fatalf("final lines %v\n%s", final, ue.stdout.String())
	}
	if by, _ := final[0]["answeredBy"].(map[string]any); by["dn1"] != 60.0 {
		t.Fatalf("answered by %v", final[0]["answeredBy"])
	}
	if got := ue.stdout.lines(t, "cell_change_reported"); len(got) != 1 {
		t.Fatalf("cell change lines %v\n%s", got, ue.stdout.String())
	}
	mu.Lock()
	if len(posts) != 1 || posts[0].UEID != "ue1" || posts[0].FromCell != "262-01-0000000a1" || posts[0].ToCell != "262-01-0000000b1" {
		t.Fatalf("posts %+v", posts)
	}
	mu.Unlock()
	for _, p := range []*proc{dn, upf, gnb1, gnb2} {
		p.stop(t)
	}
	if s := upf.stdout.lines(t, "upf_stats"); len(s) != 1 || s[0]["final"] != true || s[0]["pathSwitches"] != 1.0 || s[0]["uplink"] != 60.0 {
		t.Fatalf("upf stats %v", s)
	}
	if s := gnb1.stdout.lines(t, "gnb_stats"); len(s) != 1 || s[0]["endMarkers"] != 1.0 {
		t.Fatalf("gnb1 stats %v", s)
	}
}

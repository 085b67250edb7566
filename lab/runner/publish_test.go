package runner

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"testing"
	"time"

	"github.com/mecorch/mecorch/lab/topology"
	"github.com/mecorch/mecorch/traffic/netns"
)

// TestPublishAndNodeMadeNamespaces: a node's TCP port published on the
// runner's side answers through the node's namespace; a namespace a node
// made under its own name (as an agent names its app instances) goes with
// the lab, with its process, while one of a lab whose name extends this
// one's is left alone.
func TestPublishAndNodeMadeNamespaces(t *testing.T) {
	o := testOptions(t)
	name := labName(t)
	topo := &topology.Topology{Name: name, Nodes: []*topology.Node{{Name: "n1", Kind: topology.KindLinux}}}
	lab, err := Up(t.Context(), topo, o)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()

	// A TCP echo inside the node, on its loopback.
	var ln net.Listener
	if err := netns.Do(lab.NetnsPath("n1"), func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:7070")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				line, _ := bufio.NewReader(c).ReadString('\n')
				fmt.Fprint(c, "n1: "+line)
			}()
		}
	}()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := free.Addr().String()
	free.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pub, err := lab.Publish(ctx, addr, "n1", "127.0.0.1:7070")
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "hello\n")
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil || got != "n1: hello\n" {
		t.Fatalf("through the published port: %q, %v", got, err)
	}
	if _, err := lab.Publish(ctx, addr, "nope", "127.0.0.1:7070"); err == nil {
		t.Error("published a port of a node the lab does not have")
	}
	// An idle client does not hold up Close.
	idle, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	time.Sleep(100 * time.Millisecond)
	if err := pub.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("the port is still published after Close")
	}

	// A node-made namespace with a process in it, and another lab's.
	mine, err := netns.Create(o.NetnsDir, topo.Namespace("n1")+"-app1")
	if err != nil {
		t.Fatal(err)
	}
	other, err := netns.Create(o.NetnsDir, "clab-"+name+"-x-n1")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = netns.Delete(o.NetnsDir, "clab-"+name+"-x-n1") }()
	sleep := exec.Command("sleep", "600")
	if err := netns.StartCmd(mine, sleep); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = sleep.Wait(); close(exited) }()
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if netns.IsMounted(mine) {
		t.Error("the namespace the node made outlived the lab")
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = sleep.Process.Kill()
		t.Error("the process in the node-made namespace outlived the lab")
	}
	if !netns.IsMounted(other) {
		t.Error("closing the lab removed another lab's namespace")
	}
	_ = netns.Delete(o.NetnsDir, "clab-"+name+"-x-n1")
}

package netns

import (
	"errors"
	"fmt"
	"os/exec"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn with the calling goroutine locked to its OS thread and that
// thread in the namespace mounted on nsPath (an empty path means the
// current one: fn just runs). Sockets fn opens stay in that namespace
// after Do returns; goroutines fn starts do not run in it.
//
// If the thread cannot be moved back, it stays locked, so that the Go
// runtime ends it when the goroutine exits rather than hand it, still in
// the wrong namespace, to other goroutines.
func Do(nsPath string, fn func() error) error {
	if nsPath == "" {
		return fn()
	}
	target, err := Open(nsPath)
	if err != nil {
		return err
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current netns: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", nsPath, err)
	}
	ferr := fn()
	if err := netns.Set(orig); err != nil {
		return errors.Join(ferr, fmt.Errorf("leave netns %s: %w", nsPath, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

// StartCmd starts cmd inside the namespace mounted on nsPath: a child
// inherits the namespace of the thread that forks it, so the fork happens
// on a locked thread switched into the namespace.
func StartCmd(nsPath string, cmd *exec.Cmd) error {
	if err := Do(nsPath, cmd.Start); err != nil {
		return fmt.Errorf("start %s in netns %s: %w", cmd.Path, nsPath, err)
	}
	return nil
}

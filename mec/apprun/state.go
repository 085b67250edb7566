package apprun

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Files of an instance's state directory.
const (
	recordFile = "instance.json" // record: what the instance is
	runFile    = "run.json"      // runRecord: its process, while one runs
	logFile    = "output.log"    // stdout and stderr
	workDir    = "work"          // the process's working directory
)

// record is what is kept of an instance for as long as it exists.
type record struct {
	Spec     Spec       `json:"spec"`
	Address  netip.Addr `json:"address"`
	Restarts int        `json:"restarts"`
	// Exit is set when the instance came to rest (stopped, or failed for
	// good), so that a new Process reports it the same; it is empty while
	// the instance is meant to run.
	Exit *exitRecord `json:"exit,omitempty"`
}

type exitRecord struct {
	State   string `json:"state"`
	Message string `json:"message"`
}

// runRecord identifies a running process beyond its pid, which the kernel
// reuses: the pid's start time (in clock ticks since boot) and the boot.
type runRecord struct {
	PID        int       `json:"pid"`
	StartTicks uint64    `json:"startTicks"`
	BootID     string    `json:"bootId"`
	StartedAt  time.Time `json:"startedAt"`
}

var safeID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// keyOf names an instance on disk, in namespace and cgroup names: the id
// itself when it is short and plain (a UUID is), so that an operator
// recognises it and a sweep can tell the id from a leftover's name alone;
// a hash of it otherwise.
func keyOf(id string) string {
	if safeID.MatchString(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "h-" + hex.EncodeToString(sum[:16])
}

// writeJSON replaces a file atomically, so that a crash leaves the old
// version or the new one.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("parse %s: %w", path, err)
	}
	return nil
}

func readRecord(dir string) (record, error) {
	var r record
	if err := readJSON(filepath.Join(dir, recordFile), &r); err != nil {
		return r, err
	}
	if r.Spec.ID == "" || !r.Address.IsValid() {
		return r, fmt.Errorf("%s: incomplete instance record", dir)
	}
	return r, nil
}

// procStartTicks returns field 22 of /proc/<pid>/stat, the process's start
// time in clock ticks since boot, and whether the process is a zombie.
func procStartTicks(pid int) (ticks uint64, zombie bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	// The command name (field 2) is in parentheses and may hold spaces and
	// parentheses itself: fields are counted after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, false, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ticks, err = strconv.ParseUint(f[19], 10, 64) // field 22
	if err != nil {
		return 0, false, fmt.Errorf("/proc/%d/stat: start time: %w", pid, err)
	}
	return ticks, f[0] == "Z", nil
}

func bootID() (string, error) {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "", fmt.Errorf("boot id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// gateway is the subnet's first address, the bridge's.
func gateway(subnet netip.Prefix) netip.Prefix {
	return netip.PrefixFrom(subnet.Masked().Addr().Next(), subnet.Bits())
}

// allocate returns the lowest address of the subnet after the gateway that
// is not in use (nor, in IPv4, the broadcast address).
func allocate(subnet netip.Prefix, used map[netip.Addr]bool) (netip.Addr, error) {
	gw := gateway(subnet).Addr()
	for a := gw.Next(); a.IsValid() && subnet.Contains(a); a = a.Next() {
		if a.Is4() && !subnet.Contains(a.Next()) {
			break // broadcast
		}
		if !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, errors.New("no free address in " + subnet.String())
}

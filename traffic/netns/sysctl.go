package netns

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sysctl names are those of sysctl(8): "net.ipv4.ip_unprivileged_port_start",
// or with slashes where a part holds a dot itself (an interface name):
// "net/ipv4/conf/eth0.100/forwarding". Only net.* names are taken: they
// are the ones that belong to a network namespace; any other would be
// written for the whole machine whatever namespace the writer is in.

// sysctlPath returns the /proc/sys file of a net.* sysctl name.
func sysctlPath(name string) (string, error) {
	sep := "."
	if strings.Contains(name, "/") {
		sep = "/"
	}
	parts := strings.Split(name, sep)
	if len(parts) < 2 || parts[0] != "net" {
		return "", fmt.Errorf("sysctl %q: not a net.* name", name)
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." || strings.ContainsAny(p, "/\x00") {
			return "", fmt.Errorf("sysctl %q: invalid name", name)
		}
	}
	return filepath.Join(append([]string{"/proc/sys"}, parts...)...), nil
}

// SetSysctl writes a network sysctl of the namespace mounted on nsPath
// (the current one if empty). The file is opened from a thread inside the
// namespace: /proc/sys/net shows the namespace of the thread that looks.
func SetSysctl(nsPath, name, value string) error {
	path, err := sysctlPath(name)
	if err != nil {
		return err
	}
	err = Do(nsPath, func() error {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if _, err := f.WriteString(value); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
	if err != nil {
		return fmt.Errorf("set sysctl %s=%s in netns %q: %w", name, value, nsPath, err)
	}
	return nil
}

// Sysctl reads a network sysctl of the namespace mounted on nsPath (the
// current one if empty), without the trailing newline.
func Sysctl(nsPath, name string) (string, error) {
	path, err := sysctlPath(name)
	if err != nil {
		return "", err
	}
	var b []byte
	err = Do(nsPath, func() (err error) {
		b, err = os.ReadFile(path)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s in netns %q: %w", name, nsPath, err)
	}
	return strings.TrimRight(string(b), "\n"), nil
}

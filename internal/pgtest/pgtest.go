// Package pgtest starts throwaway PostgreSQL servers for tests: initdb in a
// temporary directory, a postgres on a free port of 127.0.0.1, a fresh
// database per test, everything removed afterwards. Tests get real
// Postgres semantics (serialisation failures, jsonb, fsync) without a
// server to install and configure, and without mocks.
//
// One test:
//
//	dsn := pgtest.Start(t)
//
// A package whose tests share one server (initdb takes seconds, a new
// database a fraction of that):
//
//	var pg pgtest.Shared
//
//	func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }
//
//	func TestX(t *testing.T) { dsn := pg.Database(t); ... }
//
// When PostgreSQL is not installed the test is skipped, unless the
// environment has CI=true: then it fails, so that a green CI run means the
// Postgres tests really ran.
package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// ErrUnavailable is wrapped by the errors that say PostgreSQL cannot run
// here at all (as opposed to failing to start).
var ErrUnavailable = errors.New("postgresql unavailable")

// installHint is what to do about ErrUnavailable.
const installHint = "install PostgreSQL (Debian/Ubuntu: apt-get install -y postgresql) " +
	"or point PGTEST_BINDIR at the directory holding initdb and postgres"

// Available reports why a throwaway cluster cannot be started here, or nil.
func Available() error {
	_, err := findBinDir()
	if err != nil {
		return err
	}
	_, err = runAsUser()
	return err
}

// Start starts a cluster of its own for t and returns the DSN of an empty
// database on it; t's cleanup stops the cluster and removes its files.
func Start(t testing.TB) string {
	t.Helper()
	c, err := StartCluster()
	if err != nil {
		skipOrFail(t, err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Errorf("stop postgres: %v", err)
		}
	})
	return c.Database(t)
}

// Shared is one cluster for a whole test binary, started when the first
// test asks for a database and stopped by Main. The zero value is ready.
type Shared struct {
	once sync.Once
	c    *Cluster
	err  error
}

// Database returns the DSN of a new, empty database on the shared cluster,
// dropped when t ends.
func (s *Shared) Database(t testing.TB) string {
	t.Helper()
	s.once.Do(func() { s.c, s.err = StartCluster() })
	if s.err != nil {
		skipOrFail(t, s.err)
	}
	return s.c.Database(t)
}

// Main runs the tests and stops the cluster if one was started; it returns
// the exit code for os.Exit.
func (s *Shared) Main(m *testing.M) int {
	code := m.Run()
	// Do runs once: after it, no test can start the cluster behind us.
	s.once.Do(func() {})
	if s.c != nil {
		if err := s.c.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop postgres: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// skipOrFail ends t for a cluster that could not start: a skip when
// Postgres is simply not installed (unless CI is set), a failure otherwise.
func skipOrFail(t testing.TB, err error) {
	t.Helper()
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("pgtest: %v", err)
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("pgtest: %v; CI=true requires the Postgres tests to run: %s", err, installHint)
	}
	t.Skipf("pgtest: %v (%s; with CI=true this fails)", err, installHint)
}

// findBinDir returns the directory holding initdb and postgres: the one
// PGTEST_BINDIR names, else the one PATH leads to (symlinks resolved, so
// that both come from one installation), else the newest of Debian's
// /usr/lib/postgresql/*/bin, which Debian does not put on PATH.
func findBinDir() (string, error) {
	if dir := os.Getenv("PGTEST_BINDIR"); dir != "" {
		if err := hasBinaries(dir); err != nil {
			return "", fmt.Errorf("PGTEST_BINDIR=%s: %w", dir, err)
		}
		return dir, nil
	}
	var candidates []string
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			candidates = append(candidates, filepath.Dir(real))
		}
		candidates = append(candidates, filepath.Dir(p))
	}
	debian, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(debian, func(i, j int) bool { return pgMajor(debian[i]) > pgMajor(debian[j]) })
	candidates = append(candidates, debian...)
	for _, dir := range candidates {
		if hasBinaries(dir) == nil {
			return dir, nil
		}
	}
	return "", fmt.Errorf("%w: initdb and postgres not found on PATH nor in /usr/lib/postgresql/*/bin", ErrUnavailable)
}

func pgMajor(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func hasBinaries(dir string) error {
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		if fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%w: %s is not executable", ErrUnavailable, filepath.Join(dir, name))
		}
	}
	return nil
}

// pgUser is who the server runs as; nil means the current user.
type pgUser struct {
	name     string
	uid, gid uint32
}

// runAsUser picks the account the server runs as. Postgres refuses to run
// as root, so under root it runs as the postgres system account when the
// package created one, else as nobody; the temporary directory is given to
// that account.
func runAsUser() (*pgUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	var tried []string
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			tried = append(tried, err.Error())
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil || uid == 0 {
			tried = append(tried, fmt.Sprintf("account %s has unusable ids %s:%s", name, u.Uid, u.Gid))
			continue
		}
		return &pgUser{name: name, uid: uint32(uid), gid: uint32(gid)}, nil
	}
	return nil, fmt.Errorf("%w: running as root, and postgres refuses root, but no account to run it as (%s)",
		ErrUnavailable, strings.Join(tried, "; "))
}

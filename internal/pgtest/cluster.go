package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	// The driver the DSNs are for; the store under test uses it too.
	_ "github.com/lib/pq"
)

// Cluster is one running throwaway PostgreSQL server. It listens on
// 127.0.0.1 only, with password authentication, so other local users
// cannot reach it; its data has fsync on, like production.
type Cluster struct {
	dir      string // temporary root: data/, the log
	binDir   string
	port     int
	password string
	user     *pgUser

	cmd     *exec.Cmd
	exited  chan struct{} // closed once postgres has exited
	waitErr error         // postgres' exit, valid once exited is closed
	admin   *sql.DB       // connected to the postgres database

	seq      atomic.Int64
	stopOnce sync.Once
	stopErr  error
}

// superuser is the cluster's superuser, created by initdb.
const superuser = "postgres"

// StartCluster initialises and starts a cluster in a new temporary
// directory. The caller must Stop it.
func StartCluster() (*Cluster, error) {
	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	u, err := runAsUser()
	if err != nil {
		return nil, err
	}
	base, err := tempBase(u)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(base, "pgtest-")
	if err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	c := &Cluster{dir: dir, binDir: binDir, user: u}
	if err := c.init(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	// A port picked free can be taken before postgres binds it; another
	// pick almost always does.
	for attempt := 1; ; attempt++ {
		err = c.start()
		if err == nil {
			break
		}
		if attempt == 3 || !errors.Is(err, errPortTaken) {
			_ = os.RemoveAll(dir)
			return nil, err
		}
	}
	c.admin, err = sql.Open("postgres", c.DSN(superuser))
	if err != nil {
		_ = c.Stop()
		return nil, fmt.Errorf("connect to the cluster: %w", err)
	}
	return c, nil
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

// LogFile is the server's log, kept until Stop.
func (c *Cluster) LogFile() string { return filepath.Join(c.dir, "postgres.log") }

// init runs initdb and writes the settings start uses.
func (c *Cluster) init() error {
	if c.user != nil {
		if err := os.Chown(c.dir, int(c.user.uid), int(c.user.gid)); err != nil {
			return fmt.Errorf("give %s to %s: %w", c.dir, c.user.name, err)
		}
	}
	var pw [16]byte
	if _, err := rand.Read(pw[:]); err != nil {
		return fmt.Errorf("generate password: %w", err)
	}
	c.password = hex.EncodeToString(pw[:])
	pwfile := filepath.Join(c.dir, "pwfile")
	if err := c.writeFile(pwfile, c.password+"\n"); err != nil {
		return err
	}
	// --no-sync: initdb's own flush only protects a fresh cluster against
	// a machine crash, which a throwaway one does not survive anyway; the
	// server itself runs with fsync on.
	out, err := c.command(filepath.Join(c.binDir, "initdb"),
		"-D", c.dataDir(), "-U", superuser, "--pwfile", pwfile,
		"--auth-local=trust", "--auth-host=scram-sha-256",
		"-E", "UTF8", "--no-locale", "--no-sync").CombinedOutput()
	_ = os.Remove(pwfile)
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	conf := filepath.Join(c.dataDir(), "postgresql.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", conf, err)
	}
	_, err = f.WriteString("\ninclude 'pgtest.conf'\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append to %s: %w", conf, err)
	}
	return nil
}

var errPortTaken = errors.New("port taken")

// start starts postgres on a free port and waits until it accepts
// connections.
func (c *Cluster) start() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	c.port = port
	// TCP only (no unix socket): a socket path has a length limit a deep
	// TMPDIR can exceed, and the tests connect over TCP anyway.
	settings := fmt.Sprintf(`listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = ''
fsync = on
synchronous_commit = on
max_connections = 300
logging_collector = off
`, port)
	if err := c.writeFile(filepath.Join(c.dataDir(), "pgtest.conf"), settings); err != nil {
		return err
	}
	logf, err := os.OpenFile(c.LogFile(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	defer logf.Close() // postgres has its own copy of the descriptor
	cmd := c.command(filepath.Join(c.binDir, "postgres"), "-D", c.dataDir())
	cmd.Stdout, cmd.Stderr = logf, logf
	// If the test binary dies without cleanup (a -timeout panic, a kill),
	// the server shuts down with it instead of lingering.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}
	c.cmd = cmd
	c.exited = make(chan struct{})
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	if err := c.waitReady(60 * time.Second); err != nil {
		c.kill()
		log := c.logTail()
		if strings.Contains(log, "could not bind") || strings.Contains(log, "already in use") {
			return fmt.Errorf("%w: %d: %v", errPortTaken, port, err)
		}
		return fmt.Errorf("postgres did not start: %w\n%s", err, log)
	}
	return nil
}

func (c *Cluster) waitReady(timeout time.Duration) error {
	db, err := sql.Open("postgres", c.DSN(superuser))
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("postgres exited: %v", c.waitErr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not accepting connections after %s: %w", timeout, err)
		}
	}
}

// DSN is the connection string of database db as the superuser.
func (c *Cluster) DSN(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, c.password),
		Host:     fmt.Sprintf("127.0.0.1:%d", c.port),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Database creates an empty database for t, dropped when t ends, and
// returns its DSN.
func (c *Cluster) Database(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%s", c.seq.Add(1), identPart(t.Name()))
	if len(name) > 63 { // NAMEDATALEN-1: longer names are truncated
		name = name[:63]
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.admin.ExecContext(ctx, `CREATE DATABASE "`+name+`"`); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE: a test that failed half-way may leave connections open.
		if _, err := c.admin.ExecContext(ctx, `DROP DATABASE IF EXISTS "`+name+`" WITH (FORCE)`); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return c.DSN(name)
}

// identPart keeps what is safe and readable of a test name in an
// identifier, so that a leftover database says which test made it.
func identPart(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Stop shuts the server down at once (an immediate shutdown, as pg_ctl
// stop -m immediate does: there is nothing worth a checkpoint) and removes
// its files. Stopping twice is harmless.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		if c.admin != nil {
			_ = c.admin.Close()
		}
		c.stopErr = c.kill()
		if err := os.RemoveAll(c.dir); err != nil && c.stopErr == nil {
			c.stopErr = fmt.Errorf("remove %s: %w", c.dir, err)
		}
	})
	return c.stopErr
}

// kill sends SIGQUIT (postgres' immediate shutdown) and waits for the
// server to exit, killing it if it does not within a minute.
func (c *Cluster) kill() error {
	if c.cmd == nil {
		return nil
	}
	select {
	case <-c.exited:
		return nil
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGQUIT); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal postgres: %w", err)
	}
	select {
	case <-c.exited:
		return nil
	case <-time.After(time.Minute):
		_ = c.cmd.Process.Kill()
		<-c.exited
		return fmt.Errorf("postgres ignored an immediate shutdown for a minute; killed")
	}
}

func (c *Cluster) logTail() string {
	b, err := os.ReadFile(c.LogFile())
	if err != nil {
		return "(no server log: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// command prepares a PostgreSQL program to run as the cluster's user with
// a clean environment: PG* variables of the caller must not redirect it.
func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "HOME=" + c.dir, "TZ=UTC"}
	cmd.Dir = c.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if c.user != nil {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: c.user.uid, Gid: c.user.gid}
	}
	return cmd
}

// writeFile writes a file the server's user owns and only it can read.
func (c *Cluster) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if c.user != nil {
		if err := os.Chown(path, int(c.user.uid), int(c.user.gid)); err != nil {
			return fmt.Errorf("give %s to %s: %w", path, c.user.name, err)
		}
	}
	return nil
}

// tempBase is where cluster directories go: the usual temporary directory,
// unless the server's user cannot reach it (a TMPDIR under /root), then
// /tmp.
func tempBase(u *pgUser) (string, error) {
	base := os.TempDir()
	if u == nil || othersCanEnter(base) {
		return base, nil
	}
	if othersCanEnter("/tmp") {
		return "/tmp", nil
	}
	return "", fmt.Errorf("%w: neither %s nor /tmp can be entered by %s", ErrUnavailable, base, u.name)
}

// othersCanEnter reports whether every directory on the way to dir lets
// any user through.
func othersCanEnter(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

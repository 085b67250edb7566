package pgtest

import (
	"context"
	"database/sql"
	"os"
	"testing"
)

var shared Shared

func TestMain(m *testing.M) { os.Exit(shared.Main(m)) }

func query(t *testing.T, dsn, q string) string {
	t.Helper()
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var s string
	if err := db.QueryRowContext(context.Background(), q).Scan(&s); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return s
}

func TestStart(t *testing.T) {
	dsn := Start(t)
	if got := query(t, dsn, "SHOW fsync"); got != "on" {
		t.Errorf("fsync = %s, want on", got)
	}
	if got := query(t, dsn, "SELECT current_database()"); got == "postgres" {
		t.Errorf("Start handed out the postgres database, not a fresh one")
	}
}

func TestSharedDatabasesAreSeparate(t *testing.T) {
	a, b := shared.Database(t), shared.Database(t)
	if a == b {
		t.Fatalf("two databases with one DSN %s", a)
	}
	for _, dsn := range []string{a, b} {
		db, err := sql.Open("postgres", dsn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`CREATE TABLE x (id int)`); err != nil {
			t.Errorf("create the same table in each database: %v", err)
		}
		db.Close()
	}
}

func TestAvailable(t *testing.T) {
	if err := Available(); err != nil {
		t.Logf("Available: %v", err)
	}
}

func TestIdentPart(t *testing.T) {
	if got := identPart("TestX/sub-test_1"); got != "testx_sub_test_1" {
		t.Errorf("identPart = %q", got)
	}
}

package storetest

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec"
)

func (h *harness) getBlob(id string) ([]byte, error) {
	var data []byte
	err := h.view(func(tx mec.Tx) (err error) { data, err = tx.GetBlob(id); return err })
	return data, err
}

func testBlobs(t *testing.T, h *harness) {
	if _, err := h.getBlob("p1"); !errors.Is(err, mec.ErrNotFound) {
		t.Errorf("GetBlob of a missing blob: %v, want ErrNotFound", err)
	}
	buf := []byte("first content")
	h.mustUpdate(func(tx mec.Tx) error {
		if err := tx.PutBlob("p1", buf); err != nil {
			return err
		}
		// The caller may reuse its buffer as soon as PutBlob returns.
		copy(buf, "XXXXX")
		return tx.PutBlob("empty", []byte{})
	})
	if got, err := h.getBlob("p1"); err != nil || string(got) != "first content" {
		t.Errorf("GetBlob: %q, %v", got, err)
	}
	if got, err := h.getBlob("empty"); err != nil || len(got) != 0 {
		t.Errorf("GetBlob of an empty blob: %q, %v; want empty, no error", got, err)
	}
	h.mustUpdate(func(tx mec.Tx) error { return tx.PutBlob("p1", []byte("second")) })
	if got, err := h.getBlob("p1"); err != nil || string(got) != "second" {
		t.Errorf("GetBlob after replace: %q, %v", got, err)
	}
	h.mustUpdate(func(tx mec.Tx) error {
		if err := tx.DeleteBlob("p1"); err != nil {
			return err
		}
		return tx.DeleteBlob("never-there")
	})
	if _, err := h.getBlob("p1"); !errors.Is(err, mec.ErrNotFound) {
		t.Errorf("GetBlob after delete: %v, want ErrNotFound", err)
	}
	if got, err := h.getBlob("empty"); err != nil || len(got) != 0 {
		t.Errorf("GetBlob of the other blob after a delete: %q, %v", got, err)
	}
}

// A package upload is tens of MiB; it must round-trip byte for byte, also
// after a reopen.
func testLargeBlob(t *testing.T, h *harness) {
	data := make([]byte, 20<<20)
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	_, _ = rng.Read(data)
	h.mustUpdate(func(tx mec.Tx) error { return tx.PutBlob("pkg.zip", data) })
	got, err := h.getBlob("pkg.zip")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetBlob of 20 MiB: %d bytes, equal %v, %v", len(got), bytes.Equal(got, data), err)
	}
	h.Reopen()
	got, err = h.getBlob("pkg.zip")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("GetBlob of 20 MiB after reopen: %d bytes, equal %v, %v", len(got), bytes.Equal(got, data), err)
	}
	h.mustUpdate(func(tx mec.Tx) error { return tx.DeleteBlob("pkg.zip") })
	if _, err := h.getBlob("pkg.zip"); !errors.Is(err, mec.ErrNotFound) {
		t.Errorf("GetBlob after delete: %v", err)
	}
}

var errAbort = errors.New("storetest: fn gives up")

func testRollbackOnError(t *testing.T, h *harness) {
	h.mustPut(mec.KindSite, "keep", `{"v":1}`, mec.MustNotExist)
	h.mustPut(mec.KindSite, "gone", `{"v":1}`, mec.MustNotExist)
	h.mustUpdate(func(tx mec.Tx) error { return tx.PutBlob("b-keep", []byte("old")) })

	err := h.update(func(tx mec.Tx) error {
		for _, id := range []string{"n1", "n2", "n3"} {
			if _, err := tx.Put(mec.KindAppInstance, id, []byte(`{}`), mec.MustNotExist); err != nil {
				return err
			}
		}
		if _, err := tx.Put(mec.KindSite, "keep", []byte(`{"v":2}`), 1); err != nil {
			return err
		}
		if err := tx.Delete(mec.KindSite, "gone", mec.AnyVersion); err != nil {
			return err
		}
		if err := tx.PutBlob("b-new", []byte("new")); err != nil {
			return err
		}
		if err := tx.PutBlob("b-keep", []byte("new")); err != nil {
			return err
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	for _, id := range []string{"n1", "n2", "n3"} {
		h.expectMissing(mec.KindAppInstance, id)
	}
	h.expectDoc(mec.KindSite, "keep", `{"v":1}`, 1)
	h.expectDoc(mec.KindSite, "gone", `{"v":1}`, 1)
	if _, err := h.getBlob("b-new"); !errors.Is(err, mec.ErrNotFound) {
		t.Errorf("blob of an aborted Update: %v", err)
	}
	if got, _ := h.getBlob("b-keep"); string(got) != "old" {
		t.Errorf("blob replaced by an aborted Update: %q", got)
	}
}

func testRollbackOnPanic(t *testing.T, h *harness) {
	func() {
		defer func() {
			if r := recover(); r != "storetest panic" {
				t.Errorf("recovered %v, want the panic of fn", r)
			}
		}()
		_ = h.update(func(tx mec.Tx) error {
			if _, err := tx.Put(mec.KindSite, "p", []byte(`{}`), mec.MustNotExist); err != nil {
				return err
			}
			panic("storetest panic")
		})
	}()
	h.expectMissing(mec.KindSite, "p")
	// The store must still work: no lock or connection left behind.
	h.mustPut(mec.KindSite, "q", `{}`, mec.MustNotExist)
	h.expectDoc(mec.KindSite, "q", `{}`, 1)
}

func testReadYourWrites(t *testing.T, h *harness) {
	h.mustPut(mec.KindHost, "old", `{}`, mec.MustNotExist)
	h.mustUpdate(func(tx mec.Tx) error {
		if _, err := tx.Put(mec.KindHost, "new", []byte(`{"v":1}`), mec.MustNotExist); err != nil {
			return err
		}
		if rec, err := tx.Get(mec.KindHost, "new"); err != nil || rec.Version != 1 || !jsonEqual(rec.Doc, []byte(`{"v":1}`)) {
			t.Errorf("Get of a document put in the same Update: %+v, %v", rec, err)
		}
		if err := tx.Delete(mec.KindHost, "old", 1); err != nil {
			return err
		}
		if _, err := tx.Get(mec.KindHost, "old"); !errors.Is(err, mec.ErrNotFound) {
			t.Errorf("Get of a document deleted in the same Update: %v", err)
		}
		if err := tx.PutBlob("b", []byte("x")); err != nil {
			return err
		}
		if b, err := tx.GetBlob("b"); err != nil || string(b) != "x" {
			t.Errorf("GetBlob in the same Update: %q, %v", b, err)
		}
		recs, err := tx.List(mec.KindHost)
		if err != nil || len(recs) != 1 || recs[0].ID != "new" {
			t.Errorf("List in the same Update: %+v, %v", recs, err)
		}
		return nil
	})
}

// A View sees the state at its start even while an Update commits, and does
// not hold the Update up.
func testViewSnapshot(t *testing.T, h *harness) {
	h.mustPut(mec.KindSite, "a", `{"v":1}`, mec.MustNotExist)
	h.mustPut(mec.KindSite, "b", `{"v":1}`, mec.MustNotExist)
	h.mustUpdate(func(tx mec.Tx) error { return tx.PutBlob("x", []byte("old")) })

	err := h.view(func(tx mec.Tx) error {
		if rec, err := tx.Get(mec.KindSite, "a"); err != nil || rec.Version != 1 {
			t.Errorf("first read: %+v, %v", rec, err)
		}
		done := make(chan error, 1)
		go func() {
			done <- h.update(func(tx mec.Tx) error {
				if _, err := tx.Put(mec.KindSite, "a", []byte(`{"v":2}`), 1); err != nil {
					return err
				}
				if _, err := tx.Put(mec.KindSite, "b", []byte(`{"v":2}`), 1); err != nil {
					return err
				}
				if _, err := tx.Put(mec.KindSite, "c", []byte(`{"v":2}`), mec.MustNotExist); err != nil {
					return err
				}
				return tx.PutBlob("x", []byte("new"))
			})
		}()
		// Not a timing assertion: the bound only turns a writer blocked
		// by a reader into a failure instead of a hung test.
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Update during a View: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("an Update waited 30s for an open View")
		}
		if rec, err := tx.Get(mec.KindSite, "b"); err != nil || rec.Version != 1 || !jsonEqual(rec.Doc, []byte(`{"v":1}`)) {
			t.Errorf("View saw a write committed after it began: %+v, %v", rec, err)
		}
		if _, err := tx.Get(mec.KindSite, "c"); !errors.Is(err, mec.ErrNotFound) {
			t.Errorf("View saw a document created after it began: %v", err)
		}
		if recs, err := tx.List(mec.KindSite); err != nil || len(recs) != 2 {
			t.Errorf("View listed %d sites (%v), want the 2 of its snapshot", len(recs), err)
		}
		if b, err := tx.GetBlob("x"); err != nil || string(b) != "old" {
			t.Errorf("View saw a blob written after it began: %q, %v", b, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	h.expectDoc(mec.KindSite, "b", `{"v":2}`, 2)
}

func testViewReadOnly(t *testing.T, h *harness) {
	h.mustPut(mec.KindSite, "a", `{}`, mec.MustNotExist)
	h.mustUpdate(func(tx mec.Tx) error { return tx.PutBlob("b", []byte("x")) })
	err := h.view(func(tx mec.Tx) error {
		if _, err := tx.Put(mec.KindSite, "n", []byte(`{}`), mec.AnyVersion); err == nil {
			t.Error("Put in a View succeeded")
		}
		if err := tx.Delete(mec.KindSite, "a", mec.AnyVersion); err == nil {
			t.Error("Delete in a View succeeded")
		}
		if err := tx.PutBlob("n", []byte("x")); err == nil {
			t.Error("PutBlob in a View succeeded")
		}
		if err := tx.DeleteBlob("b"); err == nil {
			t.Error("DeleteBlob in a View succeeded")
		}
		// Reads still work after refused writes.
		_, err := tx.Get(mec.KindSite, "a")
		return err
	})
	if err != nil {
		t.Errorf("View: %v", err)
	}
	h.expectMissing(mec.KindSite, "n")
	h.expectDoc(mec.KindSite, "a", `{}`, 1)
	if _, err := h.getBlob("b"); err != nil {
		t.Errorf("blob after a refused delete: %v", err)
	}
}

func testCancelledContext(t *testing.T, h *harness) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	err := h.s.Update(ctx, func(tx mec.Tx) error {
		ran = true
		_, err := tx.Put(mec.KindSite, "a", []byte(`{}`), mec.AnyVersion)
		return err
	})
	if !errors.Is(err, context.Canceled) || ran {
		t.Errorf("Update on a cancelled context: %v, fn ran: %v", err, ran)
	}
	err = h.s.View(ctx, func(tx mec.Tx) error { ran = true; return nil })
	if !errors.Is(err, context.Canceled) || ran {
		t.Errorf("View on a cancelled context: %v, fn ran: %v", err, ran)
	}
	h.expectMissing(mec.KindSite, "a")
}

func testReopen(t *testing.T, h *harness) {
	h.mustPut(mec.KindSite, "s", `{"name":"x"}`, mec.MustNotExist)
	h.mustPut(mec.KindSite, "s", `{"name":"y"}`, 1)
	h.mustPut(mec.KindHost, "h", `{}`, mec.MustNotExist)
	h.mustPut(mec.KindHost, "gone", `{}`, mec.MustNotExist)
	h.mustUpdate(func(tx mec.Tx) error {
		if err := tx.Delete(mec.KindHost, "gone", 1); err != nil {
			return err
		}
		return tx.PutBlob("b", []byte("blob"))
	})
	h.Reopen()
	h.expectDoc(mec.KindSite, "s", `{"name":"y"}`, 2)
	h.expectDoc(mec.KindHost, "h", `{}`, 1)
	h.expectMissing(mec.KindHost, "gone")
	if b, err := h.getBlob("b"); err != nil || string(b) != "blob" {
		t.Errorf("blob after reopen: %q, %v", b, err)
	}
	// Versions carry on from where they were.
	if v := h.mustPut(mec.KindSite, "s", `{"name":"z"}`, 2); v != 3 {
		t.Errorf("write after reopen: version %d, want 3", v)
	}
	// And a second reopen of a store that was written after the first.
	h.Reopen()
	h.expectDoc(mec.KindSite, "s", `{"name":"z"}`, 3)
}

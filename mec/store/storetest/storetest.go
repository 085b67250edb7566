// Package storetest is the contract every mec.Store engine must meet,
// written once as a test suite that each engine's tests run against a fresh
// store of their own:
//
//	func TestContract(t *testing.T) { storetest.Run(t, openMyEngine) }
//
// The suite checks behaviour a caller can observe through mec.Store, never
// an engine's internals, and compares documents as decoded JSON: Postgres'
// jsonb does not keep key order or whitespace.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/mecorch/mecorch/mec"
)

// Open opens an empty store for one test and returns it with reopen, which
// opens the same data again after the store has been closed (the suite
// checks that what was committed survives). Open registers the cleanup of
// whatever lies under the store (a directory, a database) with t; the suite
// closes the stores itself.
type Open func(t testing.TB) (s mec.Store, reopen func(t testing.TB) mec.Store)

// Run runs the whole contract against stores from open. Subtests run in
// parallel, each on its own store.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, *harness)
	}{
		{"PutGet", testPutGet},
		{"Versions", testVersions},
		{"IfVersionPut", testIfVersionPut},
		{"IfVersionDelete", testIfVersionDelete},
		{"RecreateAfterDelete", testRecreateAfterDelete},
		{"ErrorsLeaveTxUsable", testErrorsLeaveTxUsable},
		{"ListOrderAndIsolation", testList},
		{"KindsAreSeparate", testKindsSeparate},
		{"InvalidInput", testInvalidInput},
		{"Blobs", testBlobs},
		{"LargeBlob", testLargeBlob},
		{"RollbackOnError", testRollbackOnError},
		{"RollbackOnPanic", testRollbackOnPanic},
		{"ReadYourWrites", testReadYourWrites},
		{"ViewSnapshot", testViewSnapshot},
		{"ViewIsReadOnly", testViewReadOnly},
		{"CancelledContext", testCancelledContext},
		{"Reopen", testReopen},
		{"UpdateRetriesConflicts", testUpdateRetries},
		{"ConcurrentCounter", testConcurrentCounter},
		{"Reservation", testReservation},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newHarness(t, open))
		})
	}
}

// harness is one subtest's store and what it needs to reopen it.
type harness struct {
	t      *testing.T
	s      mec.Store
	reopen func(testing.TB) mec.Store
}

func newHarness(t *testing.T, open Open) *harness {
	s, reopen := open(t)
	h := &harness{t: t, s: s, reopen: reopen}
	t.Cleanup(func() { _ = h.s.Close() })
	return h
}

// Reopen closes the store and opens it again.
func (h *harness) Reopen() {
	h.t.Helper()
	if err := h.s.Close(); err != nil {
		h.t.Fatalf("Close: %v", err)
	}
	h.s = h.reopen(h.t)
}

func (h *harness) update(fn func(mec.Tx) error) error {
	return h.s.Update(context.Background(), fn)
}

func (h *harness) view(fn func(mec.Tx) error) error {
	return h.s.View(context.Background(), fn)
}

// mustUpdate runs fn in an Update that must succeed.
func (h *harness) mustUpdate(fn func(mec.Tx) error) {
	h.t.Helper()
	if err := h.update(fn); err != nil {
		h.t.Fatalf("Update: %v", err)
	}
}

// put writes one document in its own Update and returns the new version.
func (h *harness) put(kind mec.Kind, id, doc string, ifVersion int64) (int64, error) {
	var v int64
	err := h.update(func(tx mec.Tx) error {
		var err error
		v, err = tx.Put(kind, id, []byte(doc), ifVersion)
		return err
	})
	return v, err
}

func (h *harness) mustPut(kind mec.Kind, id, doc string, ifVersion int64) int64 {
	h.t.Helper()
	v, err := h.put(kind, id, doc, ifVersion)
	if err != nil {
		h.t.Fatalf("Put %s %q: %v", kind, id, err)
	}
	return v
}

// get reads one document in its own View.
func (h *harness) get(kind mec.Kind, id string) (mec.Record, error) {
	var rec mec.Record
	err := h.view(func(tx mec.Tx) error {
		var err error
		rec, err = tx.Get(kind, id)
		return err
	})
	return rec, err
}

func (h *harness) mustGet(kind mec.Kind, id string) mec.Record {
	h.t.Helper()
	rec, err := h.get(kind, id)
	if err != nil {
		h.t.Fatalf("Get %s %q: %v", kind, id, err)
	}
	return rec
}

// expectDoc checks that kind/id holds doc (as JSON) at version.
func (h *harness) expectDoc(kind mec.Kind, id, doc string, version int64) {
	h.t.Helper()
	rec := h.mustGet(kind, id)
	if rec.ID != id {
		h.t.Errorf("Get %s %q: record ID %q", kind, id, rec.ID)
	}
	if rec.Version != version {
		h.t.Errorf("Get %s %q: version %d, want %d", kind, id, rec.Version, version)
	}
	if !jsonEqual(rec.Doc, []byte(doc)) {
		h.t.Errorf("Get %s %q: doc %s, want %s", kind, id, rec.Doc, doc)
	}
}

// expectMissing checks that kind/id is not there.
func (h *harness) expectMissing(kind mec.Kind, id string) {
	h.t.Helper()
	if rec, err := h.get(kind, id); !errors.Is(err, mec.ErrNotFound) {
		h.t.Errorf("Get %s %q: got %+v, %v; want ErrNotFound", kind, id, rec, err)
	}
}

// expectErr checks err against want (a sentinel), printing what op was.
func expectErr(t testing.TB, op string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want one wrapping %v", op, err, want)
	}
}

// jsonEqual compares two JSON texts by value.
func jsonEqual(a, b []byte) bool {
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		return false
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

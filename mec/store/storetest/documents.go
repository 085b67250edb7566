package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mecorch/mecorch/mec"
)

func testPutGet(t *testing.T, h *harness) {
	h.expectMissing(mec.KindSite, "s1") // kind never written
	doc := `{"id":"s1","name":"Tower 17","latitude":48.85,"longitude":2.35,"nested":{"b":[1,2,{"c":null}],"a":"é ✓"},"big":1.5e3}`
	if v := h.mustPut(mec.KindSite, "s1", doc, mec.MustNotExist); v != 1 {
		t.Errorf("create: version %d, want 1", v)
	}
	h.expectDoc(mec.KindSite, "s1", doc, 1)
	h.expectMissing(mec.KindSite, "s2")
	h.expectMissing(mec.KindHost, "s1")

	// The typed helpers ride on the same calls.
	type site struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	var got site
	var ver int64
	err := h.view(func(tx mec.Tx) error {
		var err error
		got, ver, err = mec.Load[site](tx, mec.KindSite, "s1")
		return err
	})
	if err != nil || got.Name != "Tower 17" || ver != 1 {
		t.Errorf("Load: %+v, version %d, %v", got, ver, err)
	}
	h.mustUpdate(func(tx mec.Tx) error {
		_, err := mec.Save(tx, mec.KindSite, "s2", site{ID: "s2", Name: "CO 3"}, mec.MustNotExist)
		return err
	})
	var all []site
	err = h.view(func(tx mec.Tx) error {
		var err error
		all, err = mec.LoadAll[site](tx, mec.KindSite)
		return err
	})
	if err != nil || len(all) != 2 || all[0].ID != "s1" || all[1].Name != "CO 3" {
		t.Errorf("LoadAll: %+v, %v", all, err)
	}
}

func testVersions(t *testing.T, h *harness) {
	if v := h.mustPut(mec.KindHost, "h1", `{"n":1}`, mec.AnyVersion); v != 1 {
		t.Errorf("create with AnyVersion: version %d, want 1", v)
	}
	for want := int64(2); want <= 5; want++ {
		if v := h.mustPut(mec.KindHost, "h1", fmt.Sprintf(`{"n":%d}`, want), mec.AnyVersion); v != want {
			t.Errorf("write %d: version %d", want, v)
		}
	}
	if v := h.mustPut(mec.KindHost, "h1", `{"n":6}`, 5); v != 6 {
		t.Errorf("write with ifVersion 5: version %d, want 6", v)
	}
	h.expectDoc(mec.KindHost, "h1", `{"n":6}`, 6)

	// Several writes in one transaction count one each.
	h.mustUpdate(func(tx mec.Tx) error {
		for i := 7; i <= 9; i++ {
			v, err := tx.Put(mec.KindHost, "h1", []byte(fmt.Sprintf(`{"n":%d}`, i)), int64(i-1))
			if err != nil {
				return err
			}
			if v != int64(i) {
				t.Errorf("in-tx write: version %d, want %d", v, i)
			}
		}
		return nil
	})
	h.expectDoc(mec.KindHost, "h1", `{"n":9}`, 9)
}

func testIfVersionPut(t *testing.T, h *harness) {
	h.mustPut(mec.KindCell, "c1", `{"v":"a"}`, mec.MustNotExist)
	h.mustPut(mec.KindCell, "c1", `{"v":"b"}`, 1)

	_, err := h.put(mec.KindCell, "c1", `{"v":"x"}`, mec.MustNotExist)
	expectErr(t, "Put MustNotExist on an existing document", err, mec.ErrExists)
	_, err = h.put(mec.KindCell, "c1", `{"v":"x"}`, 1)
	expectErr(t, "Put with a stale version", err, mec.ErrConflict)
	if errors.Is(err, mec.ErrNotFound) || errors.Is(err, mec.ErrExists) {
		t.Errorf("stale Put error %v also matches another sentinel", err)
	}
	_, err = h.put(mec.KindCell, "c1", `{"v":"x"}`, 3)
	expectErr(t, "Put with a version from the future", err, mec.ErrConflict)
	_, err = h.put(mec.KindCell, "c2", `{"v":"x"}`, 1)
	expectErr(t, "Put with a version on a missing document", err, mec.ErrConflict)
	h.expectDoc(mec.KindCell, "c1", `{"v":"b"}`, 2)
	h.expectMissing(mec.KindCell, "c2")

	_, err = h.put(mec.KindCell, "c1", `{"v":"x"}`, -2)
	if err == nil {
		t.Error("Put with ifVersion -2 succeeded")
	}
}

func testIfVersionDelete(t *testing.T, h *harness) {
	del := func(kind mec.Kind, id string, ifVersion int64) error {
		return h.update(func(tx mec.Tx) error { return tx.Delete(kind, id, ifVersion) })
	}
	expectErr(t, "Delete of a never-written kind", del(mec.KindLcmOpOcc, "x", mec.AnyVersion), mec.ErrNotFound)
	h.mustPut(mec.KindSite, "a", `{}`, mec.MustNotExist)
	h.mustPut(mec.KindSite, "a", `{}`, mec.AnyVersion) // version 2
	h.mustPut(mec.KindSite, "b", `{}`, mec.MustNotExist)

	expectErr(t, "Delete of a missing document", del(mec.KindSite, "zz", mec.AnyVersion), mec.ErrNotFound)
	expectErr(t, "Delete of a missing document with a version", del(mec.KindSite, "zz", 1), mec.ErrNotFound)
	expectErr(t, "Delete with a stale version", del(mec.KindSite, "a", 1), mec.ErrConflict)
	if err := del(mec.KindSite, "a", mec.MustNotExist); err == nil {
		t.Error("Delete with MustNotExist succeeded")
	}
	h.expectDoc(mec.KindSite, "a", `{}`, 2)

	if err := del(mec.KindSite, "a", 2); err != nil {
		t.Fatalf("Delete with the current version: %v", err)
	}
	if err := del(mec.KindSite, "b", mec.AnyVersion); err != nil {
		t.Fatalf("Delete with AnyVersion: %v", err)
	}
	h.expectMissing(mec.KindSite, "a")
	h.expectMissing(mec.KindSite, "b")
	expectErr(t, "second Delete", del(mec.KindSite, "a", mec.AnyVersion), mec.ErrNotFound)
}

func testRecreateAfterDelete(t *testing.T, h *harness) {
	h.mustPut(mec.KindAppInstance, "i1", `{"gen":1}`, mec.MustNotExist)
	h.mustPut(mec.KindAppInstance, "i1", `{"gen":1}`, 1)
	h.mustUpdate(func(tx mec.Tx) error { return tx.Delete(mec.KindAppInstance, "i1", 2) })
	// A document created again is a new document: its versions restart.
	if v := h.mustPut(mec.KindAppInstance, "i1", `{"gen":2}`, mec.MustNotExist); v != 1 {
		t.Errorf("re-create: version %d, want 1", v)
	}
	h.expectDoc(mec.KindAppInstance, "i1", `{"gen":2}`, 1)
}

// Postgres aborts a transaction on any SQL error; the contract's expected
// errors (ErrExists, ErrConflict, ErrNotFound) must not, so that fn can
// react to them and carry on.
func testErrorsLeaveTxUsable(t *testing.T, h *harness) {
	h.mustPut(mec.KindSite, "a", `{"v":1}`, mec.MustNotExist)
	h.mustUpdate(func(tx mec.Tx) error {
		if _, err := tx.Put(mec.KindSite, "a", []byte(`{"v":2}`), mec.MustNotExist); !errors.Is(err, mec.ErrExists) {
			t.Errorf("Put MustNotExist: %v", err)
		}
		if _, err := tx.Put(mec.KindSite, "a", []byte(`{"v":2}`), 7); !errors.Is(err, mec.ErrConflict) {
			t.Errorf("Put stale: %v", err)
		}
		if err := tx.Delete(mec.KindSite, "zz", mec.AnyVersion); !errors.Is(err, mec.ErrNotFound) {
			t.Errorf("Delete missing: %v", err)
		}
		if _, err := tx.Get(mec.KindSite, "zz"); !errors.Is(err, mec.ErrNotFound) {
			t.Errorf("Get missing: %v", err)
		}
		if _, err := tx.GetBlob("zz"); !errors.Is(err, mec.ErrNotFound) {
			t.Errorf("GetBlob missing: %v", err)
		}
		if _, err := tx.Put(mec.KindSite, "", []byte(`{}`), mec.AnyVersion); err == nil {
			t.Error("Put with an empty ID succeeded")
		}
		if _, err := tx.Put(mec.KindSite, "bad", []byte(`{`), mec.AnyVersion); err == nil {
			t.Error("Put of invalid JSON succeeded")
		}
		_, err := tx.Put(mec.KindSite, "b", []byte(`{"v":1}`), mec.MustNotExist)
		return err
	})
	h.expectDoc(mec.KindSite, "a", `{"v":1}`, 1)
	h.expectDoc(mec.KindSite, "b", `{"v":1}`, 1)
}

func testList(t *testing.T, h *harness) {
	var empty []mec.Record
	err := h.view(func(tx mec.Tx) (err error) { empty, err = tx.List(mec.KindHost); return err })
	if err != nil || len(empty) != 0 {
		t.Errorf("List of a never-written kind: %v, %v", empty, err)
	}
	// Byte order, which is not the order of a locale-aware collation
	// (that would put "a" before "B" and "é" among the e's).
	ids := []string{"b", "a_1", "10", "é", "B", "a", "9", "a-1", "e", "Z", "ab"}
	want := []string{"10", "9", "B", "Z", "a", "a-1", "a_1", "ab", "b", "e", "é"}
	h.mustUpdate(func(tx mec.Tx) error {
		for _, id := range ids {
			if _, err := tx.Put(mec.KindHost, id, []byte(fmt.Sprintf(`{"id":%q}`, id)), mec.MustNotExist); err != nil {
				return err
			}
			// Same IDs in a neighbouring kind must not leak into the list.
			if _, err := tx.Put(mec.KindCell, id, []byte(`{"other":true}`), mec.MustNotExist); err != nil {
				return err
			}
		}
		return nil
	})
	h.mustPut(mec.KindHost, "a", `{"id":"a","again":true}`, 1)
	h.mustUpdate(func(tx mec.Tx) error { return tx.Delete(mec.KindCell, "a", mec.AnyVersion) })

	var got []mec.Record
	if err := h.view(func(tx mec.Tx) (err error) { got, err = tx.List(mec.KindHost); return err }); err != nil {
		t.Fatalf("List: %v", err)
	}
	gotIDs := make([]string, len(got))
	for i, r := range got {
		gotIDs[i] = r.ID
		wantVersion := int64(1)
		if r.ID == "a" {
			wantVersion = 2
		}
		if r.Version != wantVersion {
			t.Errorf("List: %q at version %d, want %d", r.ID, r.Version, wantVersion)
		}
		if strings.Contains(string(r.Doc), "other") {
			t.Errorf("List %s returned a %s document: %s", mec.KindHost, mec.KindCell, r.Doc)
		}
	}
	if strings.Join(gotIDs, " ") != strings.Join(want, " ") {
		t.Errorf("List order:\n got %q\nwant %q", gotIDs, want)
	}
	var cells []mec.Record
	if err := h.view(func(tx mec.Tx) (err error) { cells, err = tx.List(mec.KindCell); return err }); err != nil {
		t.Fatalf("List cells: %v", err)
	}
	if len(cells) != len(ids)-1 {
		t.Errorf("List cells after one delete: %d records, want %d", len(cells), len(ids)-1)
	}
}

// Kinds are open-ended strings; one named like the engines' own
// collections must still be a kind like any other.
func testKindsSeparate(t *testing.T, h *harness) {
	kinds := []mec.Kind{"blobs", "documents", "schema_migrations", mec.KindClient}
	for _, k := range kinds {
		h.mustPut(k, "x", fmt.Sprintf(`{"kind":%q}`, k), mec.MustNotExist)
	}
	h.mustUpdate(func(tx mec.Tx) error { return tx.PutBlob("x", []byte("blob")) })
	for _, k := range kinds {
		h.expectDoc(k, "x", fmt.Sprintf(`{"kind":%q}`, k), 1)
	}
	var blob []byte
	if err := h.view(func(tx mec.Tx) (err error) { blob, err = tx.GetBlob("x"); return err }); err != nil || string(blob) != "blob" {
		t.Errorf("GetBlob after documents of the same ID: %q, %v", blob, err)
	}
}

func testInvalidInput(t *testing.T, h *harness) {
	long := strings.Repeat("x", 600)
	cases := []struct {
		name string
		fn   func(tx mec.Tx) error
	}{
		{"empty kind", func(tx mec.Tx) error { _, err := tx.Put("", "a", []byte(`{}`), mec.AnyVersion); return err }},
		{"empty ID", func(tx mec.Tx) error { _, err := tx.Put(mec.KindSite, "", []byte(`{}`), mec.AnyVersion); return err }},
		{"long ID", func(tx mec.Tx) error { _, err := tx.Put(mec.KindSite, long, []byte(`{}`), mec.AnyVersion); return err }},
		{"NUL in ID", func(tx mec.Tx) error {
			_, err := tx.Put(mec.KindSite, "a\x00b", []byte(`{}`), mec.AnyVersion)
			return err
		}},
		{"invalid UTF-8 ID", func(tx mec.Tx) error {
			_, err := tx.Put(mec.KindSite, "a\xffb", []byte(`{}`), mec.AnyVersion)
			return err
		}},
		{"invalid JSON", func(tx mec.Tx) error {
			_, err := tx.Put(mec.KindSite, "a", []byte(`{"a":`), mec.AnyVersion)
			return err
		}},
		{"empty doc", func(tx mec.Tx) error { _, err := tx.Put(mec.KindSite, "a", nil, mec.AnyVersion); return err }},
		{"NUL escape in doc", func(tx mec.Tx) error {
			_, err := tx.Put(mec.KindSite, "a", []byte(`{"a":"x\u0000y"}`), mec.AnyVersion)
			return err
		}},
		{"Get empty ID", func(tx mec.Tx) error { _, err := tx.Get(mec.KindSite, ""); return err }},
		{"List empty kind", func(tx mec.Tx) error { _, err := tx.List(""); return err }},
		{"Delete empty ID", func(tx mec.Tx) error { return tx.Delete(mec.KindSite, "", mec.AnyVersion) }},
		{"PutBlob empty ID", func(tx mec.Tx) error { return tx.PutBlob("", []byte("x")) }},
		{"GetBlob empty ID", func(tx mec.Tx) error { _, err := tx.GetBlob(""); return err }},
	}
	for _, c := range cases {
		var inner error
		err := h.update(func(tx mec.Tx) error { inner = c.fn(tx); return nil })
		if err != nil {
			t.Errorf("%s: Update failed: %v", c.name, err)
		}
		if inner == nil {
			t.Errorf("%s: accepted", c.name)
		}
		for _, sentinel := range []error{mec.ErrNotFound, mec.ErrExists, mec.ErrConflict} {
			if errors.Is(inner, sentinel) {
				t.Errorf("%s: error %v matches %v; bad input is neither", c.name, inner, sentinel)
			}
		}
	}
	// An escaped backslash followed by u0000 is ordinary text.
	h.mustPut(mec.KindSite, "a", `{"a":"x\\u0000y"}`, mec.AnyVersion)
	h.expectDoc(mec.KindSite, "a", `{"a":"x\\u0000y"}`, 1)
	var all []mec.Record
	if err := h.view(func(tx mec.Tx) (err error) { all, err = tx.List(mec.KindSite); return err }); err != nil || len(all) != 1 {
		t.Errorf("after refused writes: %d documents, %v; want only the one accepted", len(all), err)
	}
}

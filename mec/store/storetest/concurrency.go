package storetest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mecorch/mecorch/mec"
)

type counter struct {
	N int `json:"n"`
}

// increment is the read-modify-write every concurrency test is made of: the
// version read is the version required on write, so a lost update would be
// a conflict, never a silent overwrite.
func increment(tx mec.Tx) error {
	c, v, err := mec.Load[counter](tx, mec.KindSite, "counter")
	if err != nil {
		return err
	}
	c.N++
	_, err = mec.Save(tx, mec.KindSite, "counter", c, v)
	return err
}

// retryConflicts runs an Update until it does not fail with ErrConflict.
// The contract lets Update give up after "too many" conflicts; callers that
// must not give up retry like this, and the tests do what callers do.
func retryConflicts(t *testing.T, h *harness, conflicts *atomic.Int64, fn func(mec.Tx) error) error {
	for range 100 {
		err := h.update(fn)
		if !errors.Is(err, mec.ErrConflict) {
			return err
		}
		conflicts.Add(1)
	}
	return fmt.Errorf("still conflicting after 100 Updates: %w", mec.ErrConflict)
}

// An Update whose read is overtaken by a concurrent commit must run fn
// again and succeed, rather than write over the other or surface the
// conflict. An engine that serialises writers never overtakes fn; then the
// other Update simply waits and this checks nothing is lost.
func testUpdateRetries(t *testing.T, h *harness) {
	h.mustPut(mec.KindSite, "counter", `{"n":0}`, mec.MustNotExist)
	var runs atomic.Int64
	other := make(chan error, 1)
	otherDone := false
	err := h.update(func(tx mec.Tx) error {
		c, v, err := mec.Load[counter](tx, mec.KindSite, "counter")
		if err != nil {
			return err
		}
		if runs.Add(1) == 1 {
			go func() { other <- h.update(increment) }()
			// Give the other Update the chance to commit in between;
			// an engine that serialises writers makes it wait instead.
			select {
			case err := <-other:
				otherDone = true
				if err != nil {
					t.Errorf("concurrent Update: %v", err)
				}
			case <-time.After(500 * time.Millisecond):
			}
		}
		c.N += 10
		_, err = mec.Save(tx, mec.KindSite, "counter", c, v)
		return err
	})
	if err != nil {
		t.Fatalf("Update overtaken by a concurrent commit returned %v; it should have run fn again", err)
	}
	if !otherDone {
		if err := <-other; err != nil {
			t.Fatalf("concurrent Update: %v", err)
		}
	}
	t.Logf("fn ran %d times; the other Update committed during the first run: %v", runs.Load(), otherDone)
	if otherDone && runs.Load() < 2 {
		t.Errorf("fn ran once although a concurrent commit overtook its read")
	}
	var got counter
	var ver int64
	err = h.view(func(tx mec.Tx) (err error) {
		got, ver, err = mec.Load[counter](tx, mec.KindSite, "counter")
		return err
	})
	if err != nil || got.N != 11 || ver != 3 {
		t.Errorf("counter %d at version %d (%v), want 11 at version 3", got.N, ver, err)
	}
}

func testConcurrentCounter(t *testing.T, h *harness) {
	const workers, each = 20, 5
	h.mustPut(mec.KindSite, "counter", `{"n":0}`, mec.MustNotExist)
	var conflicts atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w := range workers {
		wg.Go(func() {
			<-start
			for i := range each {
				if err := retryConflicts(t, h, &conflicts, increment); err != nil {
					t.Errorf("worker %d increment %d: %v", w, i, err)
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	var got counter
	var ver int64
	err := h.view(func(tx mec.Tx) (err error) {
		got, ver, err = mec.Load[counter](tx, mec.KindSite, "counter")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.N != workers*each || ver != workers*each+1 {
		t.Errorf("counter %d at version %d, want %d at version %d", got.N, ver, workers*each, workers*each+1)
	}
	t.Logf("%d increments; Update gave up with ErrConflict %d times", workers*each, conflicts.Load())
}

var errHostFull = errors.New("storetest: host full")

// Twenty placements race for a host with room for five. Each reads the
// host, and if there is room puts the instance and the host with its
// allocation grown, in one Update. Exactly five may win.
func testReservation(t *testing.T, h *harness) {
	const racers, room = 20, 5
	need := mec.Resources{MilliCPU: 1000, MemoryMiB: 512}
	host := mec.Host{ID: "h1", SiteID: "s1", Capacity: mec.Resources{MilliCPU: room * 1000, MemoryMiB: 8192}, State: mec.HostReady}
	h.mustUpdate(func(tx mec.Tx) error {
		_, err := mec.Save(tx, mec.KindHost, host.ID, host, mec.MustNotExist)
		return err
	})
	var placed, full, conflicts atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range racers {
		wg.Go(func() {
			<-start
			id := fmt.Sprintf("inst-%02d", i)
			err := retryConflicts(t, h, &conflicts, func(tx mec.Tx) error {
				hst, v, err := mec.Load[mec.Host](tx, mec.KindHost, "h1")
				if err != nil {
					return err
				}
				if !hst.Free().Fits(need) {
					return errHostFull
				}
				inst := mec.AppInstance{ID: id, HostID: hst.ID, Reserved: need, InstantiationState: mec.Instantiated}
				if _, err := mec.Save(tx, mec.KindAppInstance, id, inst, mec.MustNotExist); err != nil {
					return err
				}
				hst.Allocated = hst.Allocated.Add(need)
				hst.DesiredGeneration++
				_, err = mec.Save(tx, mec.KindHost, hst.ID, hst, v)
				return err
			})
			switch {
			case err == nil:
				placed.Add(1)
			case errors.Is(err, errHostFull):
				full.Add(1)
			default:
				t.Errorf("placement %s: %v", id, err)
			}
		})
	}
	close(start)
	wg.Wait()

	if placed.Load() != room || full.Load() != racers-room {
		t.Errorf("%d placed, %d refused; want %d and %d", placed.Load(), full.Load(), room, racers-room)
	}
	var got mec.Host
	var ver int64
	var insts []mec.AppInstance
	err := h.view(func(tx mec.Tx) error {
		var err error
		if got, ver, err = mec.Load[mec.Host](tx, mec.KindHost, "h1"); err != nil {
			return err
		}
		insts, err = mec.LoadAll[mec.AppInstance](tx, mec.KindAppInstance)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != room {
		t.Errorf("%d instances stored, want %d", len(insts), room)
	}
	var sum mec.Resources
	for _, in := range insts {
		sum = sum.Add(in.Reserved)
	}
	if got.Allocated != sum || got.Allocated.MilliCPU != room*1000 {
		t.Errorf("host allocated %+v, instances reserve %+v; want both %d millicores", got.Allocated, sum, room*1000)
	}
	if got.DesiredGeneration != room || ver != room+1 {
		t.Errorf("host generation %d at version %d, want %d at %d", got.DesiredGeneration, ver, room, room+1)
	}
	t.Logf("Update gave up with ErrConflict %d times", conflicts.Load())
}

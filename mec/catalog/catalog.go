// Package catalog onboards MEC app packages: it keeps the package resource
// (MEC 010-2 AppPkgInfo), checks and reads the uploaded CSAR, and enables,
// disables and deletes packages. It is the domain side of /app_pkgm/v1.
package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/mecorch/mecorch/appd"
	"github.com/mecorch/mecorch/mec"
)

// Options bound what an upload may be.
type Options struct {
	// MaxPackageBytes is the largest package file accepted (compressed).
	MaxPackageBytes int64
	Limits          appd.Limits
}

// DefaultOptions accepts packages up to 256 MiB.
func DefaultOptions() Options {
	return Options{MaxPackageBytes: 256 << 20, Limits: appd.DefaultLimits()}
}

// Service is the app package catalogue.
type Service struct {
	store mec.Store
	sink  mec.EventSink
	clock mec.Clock
	log   *slog.Logger
	opts  Options
	ids   func() string
}

// New returns a catalogue over store, publishing onboarding events to sink.
func New(store mec.Store, sink mec.EventSink, clock mec.Clock, log *slog.Logger, opts Options) *Service {
	return &Service{store: store, sink: sink, clock: clock, log: log, opts: opts, ids: mec.NewID}
}

// CreateRequest is the domain form of CreateAppPkg.
type CreateRequest struct {
	PkgName         string
	PkgVersion      string
	AppProvider     string
	PkgPath         string
	Checksum        mec.Checksum
	UserDefinedData json.RawMessage
	// Owner is the client creating the package, which alone (with the
	// operators) may see and change it; "" records no owner.
	Owner string
}

// Create makes a package resource in state CREATED, waiting for its content.
func (s *Service) Create(ctx context.Context, req CreateRequest) (mec.AppPackage, error) {
	var bad []mec.InvalidParam
	if strings.TrimSpace(req.PkgName) == "" {
		bad = append(bad, mec.InvalidParam{Name: "appPkgName", Reason: "required"})
	}
	if strings.TrimSpace(req.PkgVersion) == "" {
		bad = append(bad, mec.InvalidParam{Name: "appPkgVersion", Reason: "required"})
	}
	bad = append(bad, checkChecksum(req.Checksum)...)
	if len(bad) > 0 {
		return mec.AppPackage{}, mec.Errorf(http.StatusBadRequest, bad, "invalid CreateAppPkg")
	}
	now := s.clock()
	p := mec.AppPackage{
		ID: s.ids(), PkgName: req.PkgName, PkgVersion: req.PkgVersion, AppProvider: req.AppProvider,
		PkgPath: req.PkgPath, Checksum: req.Checksum, UserDefinedData: req.UserDefinedData,
		OnboardingState: mec.PkgCreated, OperationalState: mec.PkgDisabled, Owner: req.Owner, CreatedAt: now,
	}
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		_, err := mec.Save(tx, mec.KindAppPackage, p.ID, p, mec.MustNotExist)
		return err
	})
	if err != nil {
		return mec.AppPackage{}, fmt.Errorf("create app package: %w", err)
	}
	return p, nil
}

// Get returns a package by its resource ID or, failing that, by the appDId
// of an onboarded package (the v3 file names the path parameter appDId; the
// v2 one appPkgId: both are accepted).
func (s *Service) Get(ctx context.Context, ref string) (mec.AppPackage, error) {
	var p mec.AppPackage
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		p, _, err = resolve(tx, ref)
		return err
	})
	return p, err
}

// resolve finds a package by ID, then by appDId.
func resolve(tx mec.Tx, ref string) (mec.AppPackage, int64, error) {
	p, v, err := mec.Load[mec.AppPackage](tx, mec.KindAppPackage, ref)
	if err == nil || !errors.Is(err, mec.ErrNotFound) {
		return p, v, err
	}
	recs, err := tx.List(mec.KindAppPackage)
	if err != nil {
		return p, 0, err
	}
	for _, rec := range recs {
		var c mec.AppPackage
		if err := json.Unmarshal(rec.Doc, &c); err != nil {
			return p, 0, fmt.Errorf("decode app package %q: %w", rec.ID, err)
		}
		if c.AppDID == ref && c.AppDID != "" {
			return c, rec.Version, nil
		}
	}
	return p, 0, mec.Errorf(http.StatusNotFound, nil, "app package %q not found", ref)
}

// FindOnboarded returns the ONBOARDED package whose AppD has appDID.
func FindOnboarded(tx mec.Tx, appDID string) (mec.AppPackage, error) {
	pkgs, err := mec.LoadAll[mec.AppPackage](tx, mec.KindAppPackage)
	if err != nil {
		return mec.AppPackage{}, err
	}
	for _, p := range pkgs {
		if p.AppDID == appDID && p.OnboardingState == mec.PkgOnboarded {
			return p, nil
		}
	}
	return mec.AppPackage{}, mec.ErrNotFound
}

// List returns every package with its usage state.
func (s *Service) List(ctx context.Context) ([]mec.AppPackage, map[string]string, error) {
	var pkgs []mec.AppPackage
	usage := map[string]string{}
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		if pkgs, err = mec.LoadAll[mec.AppPackage](tx, mec.KindAppPackage); err != nil {
			return err
		}
		inUse, err := packagesInUse(tx)
		if err != nil {
			return err
		}
		for _, p := range pkgs {
			usage[p.ID] = usageOf(inUse, p.ID)
		}
		return nil
	})
	return pkgs, usage, err
}

// UsageState says whether instances of the package exist.
func (s *Service) UsageState(ctx context.Context, pkgID string) (string, error) {
	var u string
	err := s.store.View(ctx, func(tx mec.Tx) error {
		inUse, err := packagesInUse(tx)
		u = usageOf(inUse, pkgID)
		return err
	})
	return u, err
}

func usageOf(inUse map[string]int, id string) string {
	if inUse[id] > 0 {
		return mec.PkgInUse
	}
	return mec.PkgNotInUse
}

// packagesInUse counts app instances per package.
func packagesInUse(tx mec.Tx) (map[string]int, error) {
	insts, err := mec.LoadAll[mec.AppInstance](tx, mec.KindAppInstance)
	if err != nil {
		return nil, err
	}
	n := map[string]int{}
	for _, in := range insts {
		n[in.AppPkgID]++
	}
	return n, nil
}

// Precondition is the state a conditional change (an HTTP If-Match)
// expects the package to be in. The change checks it in its own
// transaction: a check made in an earlier one would miss a change landing
// in between.
type Precondition struct {
	// Version is the package document's store version, or mec.AnyVersion
	// for any. MustNotExist (the zero value) matches no package.
	Version int64
	// Usage is the usage state expected (mec.PkgInUse, mec.PkgNotInUse),
	// or "" for any: it is part of the package's representation but is
	// derived from the instances, so the version alone does not cover it.
	Usage string
}

// Unconditional is the Precondition of an unconditional change.
func Unconditional() Precondition { return Precondition{Version: mec.AnyVersion} }

// check answers 412 unless p at version v, used as inUse says, is what pre
// expects. The problem is not an mec.ErrConflict: a store retries a
// transaction that returns one, and a stale precondition stays stale.
func (pre Precondition) check(tx mec.Tx, p mec.AppPackage, v int64) error {
	if pre.Version != mec.AnyVersion && pre.Version != v {
		return mec.Errorf(http.StatusPreconditionFailed, nil,
			"app package %s has changed: it is at version %d, the request expected version %d", p.ID, v, pre.Version)
	}
	if pre.Usage == "" {
		return nil
	}
	inUse, err := packagesInUse(tx)
	if err != nil {
		return err
	}
	if u := usageOf(inUse, p.ID); u != pre.Usage {
		return mec.Errorf(http.StatusPreconditionFailed, nil,
			"app package %s has changed: it is %s, the request expected %s", p.ID, u, pre.Usage)
	}
	return nil
}

// SetOperationalState enables or disables an onboarded package, provided
// it is as pre expects.
func (s *Service) SetOperationalState(ctx context.Context, ref, state string, pre Precondition) (mec.AppPackage, error) {
	if state != mec.PkgEnabled && state != mec.PkgDisabled {
		return mec.AppPackage{}, mec.Errorf(http.StatusBadRequest,
			[]mec.InvalidParam{{Name: "operationalState", Reason: "must be ENABLED or DISABLED"}}, "invalid operationalState %q", state)
	}
	var p mec.AppPackage
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		var v int64
		var err error
		if p, v, err = resolve(tx, ref); err != nil {
			return err
		}
		// A failed precondition answers before the change is judged
		// (RFC 9110 13.2.2).
		if err := pre.check(tx, p, v); err != nil {
			return err
		}
		if p.OnboardingState != mec.PkgOnboarded {
			return mec.Errorf(http.StatusConflict, nil, "app package %s is %s, not ONBOARDED", p.ID, p.OnboardingState)
		}
		if p.OperationalState == state {
			return mec.Errorf(http.StatusConflict, nil, "app package %s is already %s", p.ID, state)
		}
		p.OperationalState = state
		_, err = mec.Save(tx, mec.KindAppPackage, p.ID, p, v)
		return err
	})
	if err != nil {
		return mec.AppPackage{}, err
	}
	ev := mec.EventPkgEnabled
	if state == mec.PkgDisabled {
		ev = mec.EventPkgDisabled
	}
	s.publish(ev, p)
	return p, nil
}

// Delete removes a package that no instance uses, with its content,
// provided it is as pre expects.
func (s *Service) Delete(ctx context.Context, ref string, pre Precondition) error {
	var p mec.AppPackage
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		var v int64
		var err error
		if p, v, err = resolve(tx, ref); err != nil {
			return err
		}
		if err := pre.check(tx, p, v); err != nil {
			return err
		}
		inUse, err := packagesInUse(tx)
		if err != nil {
			return err
		}
		if n := inUse[p.ID]; n > 0 {
			return mec.Errorf(http.StatusConflict, nil, "app package %s is IN_USE by %d app instance(s); delete them first", p.ID, n)
		}
		if p.OnboardingState == mec.PkgProcessing {
			return mec.Errorf(http.StatusConflict, nil, "app package %s is being processed; retry when it is done", p.ID)
		}
		if err := tx.DeleteBlob(blobID(p.ID)); err != nil {
			return err
		}
		return tx.Delete(mec.KindAppPackage, p.ID, v)
	})
	if err != nil {
		return err
	}
	s.publish(mec.EventPkgDeleted, p)
	return nil
}

// Content returns the uploaded package file.
func (s *Service) Content(ctx context.Context, ref string) (mec.AppPackage, []byte, error) {
	var p mec.AppPackage
	var data []byte
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		if p, _, err = resolve(tx, ref); err != nil {
			return err
		}
		if p.OnboardingState != mec.PkgOnboarded {
			return mec.Errorf(http.StatusConflict, nil, "app package %s is %s: no content to fetch", p.ID, p.OnboardingState)
		}
		data, err = tx.GetBlob(blobID(p.ID))
		return err
	})
	return p, data, err
}

func blobID(pkgID string) string { return "app_package/" + pkgID }

func (s *Service) publish(t mec.EventType, p mec.AppPackage) {
	if s.sink == nil {
		return
	}
	s.sink.Publish(mec.Event{Type: t, At: s.clock(), Package: &p, Deleted: t == mec.EventPkgDeleted})
}

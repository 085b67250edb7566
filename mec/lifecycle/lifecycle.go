// Package lifecycle runs MEC app instances through their lifecycle:
// creation, instantiation (placement and reservation), operate, terminate,
// and the LCM operation occurrences that track each change until the host's
// agent reports it done. It is the domain side of /app_lcm/v1, and it owns
// each host's desired state and its generation number.
package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/catalog"
	"github.com/mecorch/mecorch/mec/placement"
)

// Config tunes the lifecycle.
type Config struct {
	// OpTimeout is how long an operation may wait for its host's agent
	// before it becomes FAILED_TEMP (0: wait for ever).
	OpTimeout time.Duration
	// ObservePlacement, when set, is told the outcome ("placed", "nofit",
	// "error") and engine time of every placement decision, for metrics.
	ObservePlacement func(outcome string, took time.Duration)
	// Distance, when set, is how far two sites are by measured RTT (ok
	// false when unknown). A host that steers to an app's instance on
	// another host picks the nearest by it; without it, the lowest
	// instance ID.
	Distance func(siteA, siteB string) (rtt time.Duration, ok bool)
	// DesiredChanged, when set, is told the hosts whose generation a
	// data-plane sync moved, so that their agents get the new desired
	// state (lifecycle events tell of the other changes). It must not
	// block.
	DesiredChanged func(hostIDs []string)
	// DataPlaneResync is how often RunDataPlane syncs without being
	// kicked (10 s when 0); DataPlaneSettle how long a kick waits for
	// more before the sync (100 ms when 0).
	DataPlaneResync, DataPlaneSettle time.Duration
}

// Service is the app instance lifecycle.
type Service struct {
	cfg    Config
	store  mec.Store
	engine *placement.Engine
	sink   mec.EventSink
	clock  mec.Clock
	log    *slog.Logger
	ids    func() string
	// placeMu serialises this process's placements. Each reads the whole
	// inventory and writes a host, so concurrent ones would only abort
	// each other in a serializable store and retry; queueing them here is
	// cheaper and keeps Postgres retries for the rare cross-replica race.
	placeMu   sync.Mutex
	lastPlace placeObservation // guarded by placeMu
	// dpKick wakes RunDataPlane; dpMu serialises this process's
	// data-plane syncs.
	dpKick chan struct{}
	dpMu   sync.Mutex
}

// New returns a lifecycle service placing with engine.
func New(cfg Config, store mec.Store, engine *placement.Engine, sink mec.EventSink, clock mec.Clock, log *slog.Logger) *Service {
	return &Service{cfg: cfg, store: store, engine: engine, sink: sink, clock: clock, log: log, ids: mec.NewID,
		dpKick: make(chan struct{}, 1)}
}

// CreateRequest is the domain form of CreateAppInstanceRequest.
type CreateRequest struct {
	AppDID      string
	Name        string
	Description string
	// Owner is the client creating the instance, which alone (with the
	// operators) may see and operate it; "" records no owner.
	Owner string
	// OwnPackageOnly restricts the package to one whose Owner is Owner:
	// an app provider instantiates only what it onboarded itself.
	OwnPackageOnly bool
}

// Create makes an app instance resource (NOT_INSTANTIATED) of the onboarded,
// enabled package with the AppD ID asked for. Under OwnPackageOnly another
// owner's package is as absent as a missing one, so that its existence is
// not revealed.
func (s *Service) Create(ctx context.Context, req CreateRequest) (mec.AppInstance, error) {
	if req.AppDID == "" {
		return mec.AppInstance{}, mec.Errorf(http.StatusBadRequest, []mec.InvalidParam{{Name: "appDId", Reason: "required"}}, "appDId is required")
	}
	var in mec.AppInstance
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		p, err := catalog.FindOnboarded(tx, req.AppDID)
		if err == nil && req.OwnPackageOnly && (p.Owner == "" || p.Owner != req.Owner) {
			err = mec.ErrNotFound
		}
		if errors.Is(err, mec.ErrNotFound) {
			return mec.Errorf(http.StatusUnprocessableEntity, []mec.InvalidParam{{Name: "appDId", Reason: "no onboarded app package has this appDId"}},
				"no onboarded app package with appDId %q", req.AppDID)
		}
		if err != nil {
			return err
		}
		if p.OperationalState != mec.PkgEnabled {
			return mec.Errorf(http.StatusConflict, nil, "app package %s (appDId %q) is DISABLED", p.ID, p.AppDID)
		}
		in = mec.AppInstance{
			ID: s.ids(), Name: req.Name, Description: req.Description,
			AppDID: p.AppDID, AppPkgID: p.ID, AppProvider: p.AppProvider, AppName: p.AppName,
			AppSoftVersion: p.AppSoftwareVersion, AppDVersion: p.AppDVersion,
			InstantiationState: mec.NotInstantiated, Owner: req.Owner, CreatedAt: s.clock(),
		}
		_, err = mec.Save(tx, mec.KindAppInstance, in.ID, in, mec.MustNotExist)
		return err
	})
	if err != nil {
		return mec.AppInstance{}, err
	}
	s.publish(mec.Event{Type: mec.EventInstanceState, Instance: &in, Created: true})
	return in, nil
}

// Get returns one instance.
func (s *Service) Get(ctx context.Context, id string) (mec.AppInstance, error) {
	var in mec.AppInstance
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		in, _, err = loadInstance(tx, id)
		return err
	})
	return in, err
}

// List returns every instance.
func (s *Service) List(ctx context.Context) ([]mec.AppInstance, error) {
	var out []mec.AppInstance
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		out, err = mec.LoadAll[mec.AppInstance](tx, mec.KindAppInstance)
		return err
	})
	return out, err
}

// Delete removes a NOT_INSTANTIATED instance resource.
func (s *Service) Delete(ctx context.Context, id string) error {
	var in mec.AppInstance
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		var v int64
		var err error
		if in, v, err = loadInstance(tx, id); err != nil {
			return err
		}
		if in.InstantiationState != mec.NotInstantiated || in.PendingOpID != "" || in.HostID != "" {
			return mec.Errorf(http.StatusConflict, nil, "app instance %s is %s; terminate it first", id, describe(in))
		}
		return tx.Delete(mec.KindAppInstance, id, v)
	})
	if err != nil {
		return err
	}
	s.publish(mec.Event{Type: mec.EventInstanceState, Instance: &in, Deleted: true})
	return nil
}

// OpOcc returns one LCM operation occurrence.
func (s *Service) OpOcc(ctx context.Context, id string) (mec.LcmOpOcc, error) {
	var op mec.LcmOpOcc
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		op, _, err = loadOp(tx, id)
		return err
	})
	return op, err
}

// OpOccs returns every LCM operation occurrence.
func (s *Service) OpOccs(ctx context.Context) ([]mec.LcmOpOcc, error) {
	var out []mec.LcmOpOcc
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		out, err = mec.LoadAll[mec.LcmOpOcc](tx, mec.KindLcmOpOcc)
		return err
	})
	return out, err
}

func loadInstance(tx mec.Tx, id string) (mec.AppInstance, int64, error) {
	in, v, err := mec.Load[mec.AppInstance](tx, mec.KindAppInstance, id)
	if errors.Is(err, mec.ErrNotFound) {
		return in, 0, mec.Errorf(http.StatusNotFound, nil, "app instance %q not found", id)
	}
	return in, v, err
}

func loadOp(tx mec.Tx, id string) (mec.LcmOpOcc, int64, error) {
	op, v, err := mec.Load[mec.LcmOpOcc](tx, mec.KindLcmOpOcc, id)
	if errors.Is(err, mec.ErrNotFound) {
		return op, 0, mec.Errorf(http.StatusNotFound, nil, "app LCM operation occurrence %q not found", id)
	}
	return op, v, err
}

func loadHost(tx mec.Tx, id string) (mec.Host, int64, error) {
	h, v, err := mec.Load[mec.Host](tx, mec.KindHost, id)
	if err != nil {
		return h, 0, fmt.Errorf("host %q of the instance: %w", id, err)
	}
	return h, v, nil
}

// describe says where an instance stands, for 409 details.
func describe(in mec.AppInstance) string {
	if in.PendingOpID != "" {
		return "busy with operation " + in.PendingOpID
	}
	if in.InstantiationState == mec.Instantiated {
		return "INSTANTIATED (" + in.OperationalState + ")"
	}
	return in.InstantiationState
}

func (s *Service) publish(ev mec.Event) {
	if ev.Instance != nil {
		// Where an instance is, whether it runs and its MAC decide what
		// other hosts steer to.
		s.KickDataPlane()
	}
	if s.sink == nil {
		return
	}
	if ev.At.IsZero() {
		ev.At = s.clock()
	}
	s.sink.Publish(ev)
}

// publishAll sends events collected inside a transaction, after commit.
func (s *Service) publishAll(evs []mec.Event) {
	for _, ev := range evs {
		s.publish(ev)
	}
}

// rawParams keeps an operation's request as sent, for operationParams.
func rawParams(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	if r, ok := v.(json.RawMessage); ok {
		return r
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

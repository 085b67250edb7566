// Package inventory keeps the operator's picture of the edge: sites, the
// hosts (edge servers) at each site and the radio cells each site serves. It
// validates what an operator registers, with the field path of every wrong
// field, and enforces the rules that keep the picture whole: no host on a
// missing site, no site deleted under its hosts or cells, no host deleted or
// shrunk under the instances placed on it. It is the domain side of the
// operator API's /api/v1/sites, /hosts and /cells.
//
// A host's Allocated and generations belong to the lifecycle service and its
// State to the agents' heartbeats: inventory writes a host by reading it and
// writing it back in one transaction, so that an operator's edit never undoes
// a reservation committed meanwhile.
package inventory

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/mecorch/mecorch/mec"
)

// Service is the inventory. It holds no state of its own beyond its
// dependencies, so one Service may serve any number of goroutines.
type Service struct {
	store mec.Store
	clock mec.Clock
	log   *slog.Logger
	ids   func() string
}

// New returns an inventory over store.
func New(store mec.Store, clock mec.Clock, log *slog.Logger) *Service {
	return &Service{store: store, clock: clock, log: log, ids: mec.NewID}
}

// now is the clock's time in UTC without a monotonic reading, so that what
// Create returns equals what a later Get decodes.
func (s *Service) now() time.Time { return s.clock().UTC().Round(0) }

// domainError is a problem the API returns as is that also matches a store
// sentinel with errors.Is, so that Go callers can test for ErrNotFound
// without parsing a status.
type domainError struct {
	p        *mec.Problem
	sentinel error
}

func (e *domainError) Error() string   { return e.p.Detail }
func (e *domainError) Unwrap() []error { return []error{e.p, e.sentinel} }

// notFound is a 404 that also is mec.ErrNotFound.
func notFound(what, id string) error {
	return &domainError{p: mec.Errorf(http.StatusNotFound, nil, "%s %q not found", what, id), sentinel: mec.ErrNotFound}
}

// exists is a 409 that also is mec.ErrExists.
func exists(what, id string) error {
	return &domainError{p: mec.Errorf(http.StatusConflict, nil, "%s %q already exists", what, id), sentinel: mec.ErrExists}
}

// invalid is the 400 listing every wrong field. The detail names the first
// so that a log line alone says something useful.
func invalid(what string, bad []mec.InvalidParam) error {
	return mec.Errorf(http.StatusBadRequest, bad, "invalid %s: %s: %s (%d invalid field(s))", what, bad[0].Name, bad[0].Reason, len(bad))
}

// stale is the 412 of a write whose precondition no longer holds. It does
// not wrap mec.ErrConflict on purpose: an engine retries a transaction whose
// function returns that, and retrying cannot make a stale version current.
func stale(what, id string, have, want int64) error {
	return mec.Errorf(http.StatusPreconditionFailed, nil, "%s %q is at version %d, not %d: read it again", what, id, have, want)
}

// checkVersion enforces ifVersion (mec.AnyVersion: no precondition).
func checkVersion(what, id string, have, ifVersion int64) error {
	if ifVersion != mec.AnyVersion && have != ifVersion {
		return stale(what, id, have, ifVersion)
	}
	return nil
}

// missingSite is the 422 of a host or cell that names a site that is not
// there: the request is well-formed, it refers to something absent, which is
// what 422 says and what the lifecycle answers for a missing appDId too.
func missingSite(siteID string) error {
	return mec.Errorf(http.StatusUnprocessableEntity,
		[]mec.InvalidParam{{Name: "siteId", Reason: "no site has this ID"}},
		"site %q does not exist", siteID)
}

// siteMustExist returns missingSite when siteID is not in tx.
func siteMustExist(tx mec.Tx, siteID string) error {
	_, err := tx.Get(mec.KindSite, siteID)
	if errors.Is(err, mec.ErrNotFound) {
		return missingSite(siteID)
	}
	if err != nil {
		return fmt.Errorf("read site %q: %w", siteID, err)
	}
	return nil
}

// wrap adds context to a store error but lets problems through untouched:
// their detail is already what the client should read.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var p *mec.Problem
	if errors.As(err, &p) {
		return err
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}

package inventory

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/mecorch/mecorch/mec"
)

// CreateSite registers s and returns it as stored with its version. Without
// an ID it gets a generated one; CreatedAt is the clock's.
func (s *Service) CreateSite(ctx context.Context, site mec.Site) (mec.Site, int64, error) {
	if bad := ValidateSite(site); len(bad) > 0 {
		return mec.Site{}, 0, invalid("site", bad)
	}
	if site.ID == "" {
		site.ID = s.ids()
	}
	site.CreatedAt = s.now()
	var ver int64
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		v, err := mec.Save(tx, mec.KindSite, site.ID, site, mec.MustNotExist)
		if errors.Is(err, mec.ErrExists) {
			return exists("site", site.ID)
		}
		ver = v
		return err
	})
	if err != nil {
		return mec.Site{}, 0, wrap(err, "create site %q", site.ID)
	}
	s.log.Info("site created", "site", site.ID, "name", site.Name)
	return site, ver, nil
}

// GetSite returns a site and its version.
func (s *Service) GetSite(ctx context.Context, id string) (mec.Site, int64, error) {
	var site mec.Site
	var ver int64
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		site, ver, err = loadSite(tx, id)
		return err
	})
	return site, ver, wrap(err, "get site %q", id)
}

// ListSites returns every site, ordered by ID.
func (s *Service) ListSites(ctx context.Context) ([]mec.Site, error) {
	var sites []mec.Site
	err := s.store.View(ctx, func(tx mec.Tx) error {
		var err error
		sites, err = mec.LoadAll[mec.Site](tx, mec.KindSite)
		return err
	})
	return sites, wrap(err, "list sites")
}

// UpdateSite replaces the site id with site, keeping its CreatedAt. site.ID
// may be empty; if set it must be id. ifVersion is mec.AnyVersion or the
// version the caller read (412 when it is no longer current).
func (s *Service) UpdateSite(ctx context.Context, id string, site mec.Site, ifVersion int64) (mec.Site, int64, error) {
	var bad []mec.InvalidParam
	if site.ID != "" && site.ID != id {
		bad = append(bad, mec.InvalidParam{Name: "id", Reason: fmt.Sprintf("must be %q, the site being replaced, or absent", id)})
		site.ID = "" // one reason per field: this one
	}
	bad = append(bad, ValidateSite(site)...)
	if len(bad) > 0 {
		return mec.Site{}, 0, invalid("site", bad)
	}
	site.ID = id
	var ver int64
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		cur, v, err := loadSite(tx, id)
		if err != nil {
			return err
		}
		if err := checkVersion("site", id, v, ifVersion); err != nil {
			return err
		}
		site.CreatedAt = cur.CreatedAt
		if site == cur {
			ver = v // nothing changes: keep the version, and so the client's ETag
			return nil
		}
		ver, err = mec.Save(tx, mec.KindSite, id, site, v)
		return err
	})
	if err != nil {
		return mec.Site{}, 0, wrap(err, "update site %q", id)
	}
	return site, ver, nil
}

// DeleteSite removes a site that has neither hosts nor cells: deleting it
// under them would leave hosts placement cannot locate and cells that map
// to nowhere.
func (s *Service) DeleteSite(ctx context.Context, id string, ifVersion int64) error {
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		_, v, err := loadSite(tx, id)
		if err != nil {
			return err
		}
		if err := checkVersion("site", id, v, ifVersion); err != nil {
			return err
		}
		hosts, err := hostsOfSite(tx, id)
		if err != nil {
			return err
		}
		cells, err := cellsOfSite(tx, id)
		if err != nil {
			return err
		}
		if len(hosts) > 0 || len(cells) > 0 {
			var what []string
			if len(hosts) > 0 {
				what = append(what, fmt.Sprintf("hosts %s", idList(hosts, func(h mec.Host) string { return h.ID })))
			}
			if len(cells) > 0 {
				what = append(what, fmt.Sprintf("cells %s", idList(cells, func(c mec.Cell) string { return c.ID })))
			}
			return mec.Errorf(http.StatusConflict, nil, "site %q still has %s: delete them first", id, strings.Join(what, " and "))
		}
		return tx.Delete(mec.KindSite, id, v)
	})
	if err != nil {
		return wrap(err, "delete site %q", id)
	}
	s.log.Info("site deleted", "site", id)
	return nil
}

// loadSite reads a site, turning absence into a 404.
func loadSite(tx mec.Tx, id string) (mec.Site, int64, error) {
	site, v, err := mec.Load[mec.Site](tx, mec.KindSite, id)
	if errors.Is(err, mec.ErrNotFound) {
		return site, 0, notFound("site", id)
	}
	return site, v, err
}

// idList renders the IDs of xs for a conflict message, capped so that a
// site with a thousand hosts does not make a thousand-line problem.
func idList[T any](xs []T, id func(T) string) string {
	const show = 10
	ids := make([]string, 0, min(len(xs), show))
	for _, x := range xs[:min(len(xs), show)] {
		ids = append(ids, fmt.Sprintf("%q", id(x)))
	}
	out := strings.Join(ids, ", ")
	if len(xs) > show {
		out += fmt.Sprintf(" and %d more", len(xs)-show)
	}
	return out
}

package catalog

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mecorch/mecorch/appd"
	"github.com/mecorch/mecorch/mec"
)

// checkChecksum validates a CreateAppPkg checksum before any content exists,
// so that a typo is caught at creation and not after a long upload.
func checkChecksum(c mec.Checksum) []mec.InvalidParam {
	var bad []mec.InvalidParam
	want := 0
	switch strings.ToUpper(strings.ReplaceAll(c.Algorithm, "-", "")) {
	case "SHA256":
		want = 64
	case "SHA384":
		want = 96
	case "SHA512":
		want = 128
	case "":
		bad = append(bad, mec.InvalidParam{Name: "checksum.algorithm", Reason: "required (SHA-256, SHA-384 or SHA-512)"})
	default:
		bad = append(bad, mec.InvalidParam{Name: "checksum.algorithm", Reason: fmt.Sprintf("unsupported %q: use SHA-256, SHA-384 or SHA-512", c.Algorithm)})
	}
	if _, err := hex.DecodeString(c.Hash); err != nil || c.Hash == "" {
		bad = append(bad, mec.InvalidParam{Name: "checksum.hash", Reason: "must be a hexadecimal digest"})
	} else if want > 0 && len(c.Hash) != want {
		bad = append(bad, mec.InvalidParam{Name: "checksum.hash", Reason: fmt.Sprintf("must be %d hex digits for %s", want, c.Algorithm)})
	}
	return bad
}

// Upload takes the package file, checks it and onboards it. The package
// goes CREATED → PROCESSING → ONBOARDED (and ENABLED) when everything holds;
// otherwise it returns to CREATED with onboardingFailureDetails naming every
// wrong field, and the error returned is that same problem, so the uploader
// learns at once and a later GET tells the same story.
func (s *Service) Upload(ctx context.Context, ref string, content []byte, contentType string) (mec.AppPackage, error) {
	if int64(len(content)) > s.opts.MaxPackageBytes {
		return mec.AppPackage{}, mec.Errorf(http.StatusRequestEntityTooLarge, nil,
			"package is %d bytes; the limit is %d", len(content), s.opts.MaxPackageBytes)
	}
	// Claim the package: only one upload at a time, and never over an
	// onboarded one.
	var p mec.AppPackage
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		var v int64
		var err error
		if p, v, err = resolve(tx, ref); err != nil {
			return err
		}
		if p.OnboardingState != mec.PkgCreated {
			return mec.Errorf(http.StatusConflict, nil, "app package %s is %s; content can be uploaded only in CREATED", p.ID, p.OnboardingState)
		}
		now := s.clock()
		p.OnboardingState = mec.PkgProcessing
		p.OnboardingFailure, p.ProcessingSince = nil, &now
		_, err = mec.Save(tx, mec.KindAppPackage, p.ID, p, v)
		return err
	})
	if err != nil {
		return mec.AppPackage{}, err
	}

	pkg, prob := s.check(p, content)
	// The outcome is recorded even when the uploader has gone away
	// meanwhile: otherwise the package would stay PROCESSING, refusing both
	// a new upload and a delete until Recover finds it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	err = s.store.Update(ctx, func(tx mec.Tx) error {
		cur, v, err := mec.Load[mec.AppPackage](tx, mec.KindAppPackage, p.ID)
		if err != nil {
			return err
		}
		if prob == nil {
			if other, err := FindOnboarded(tx, pkg.AppD.AppDID); err == nil && other.ID != p.ID {
				// appDIds are unique across owners (an instance names its
				// package by appDId), so the clash itself must be told;
				// another owner's package ID is not the uploader's to know.
				reason := "already onboarded as package " + other.ID
				if other.Owner != cur.Owner {
					reason = "already onboarded by another client"
				}
				prob = mec.Errorf(http.StatusConflict, []mec.InvalidParam{{Name: "appD.appDId", Reason: reason}},
					"an app package with appDId %q is already onboarded", pkg.AppD.AppDID)
			} else if err != nil && !errors.Is(err, mec.ErrNotFound) {
				return err
			}
		}
		cur.ProcessingSince = nil
		if prob != nil {
			cur.OnboardingState = mec.PkgCreated
			cur.OnboardingFailure = prob
			_, err = mec.Save(tx, mec.KindAppPackage, p.ID, cur, v)
			return err
		}
		if err := fill(&cur, pkg, content, contentType); err != nil {
			return err
		}
		if err := tx.PutBlob(blobID(p.ID), content); err != nil {
			return err
		}
		_, err = mec.Save(tx, mec.KindAppPackage, p.ID, cur, v)
		p = cur
		return err
	})
	if err != nil {
		return mec.AppPackage{}, fmt.Errorf("record onboarding of %s: %w", p.ID, err)
	}
	if prob != nil {
		return mec.AppPackage{}, prob
	}
	s.log.Info("app package onboarded", "pkg", p.ID, "appDId", p.AppDID, "bytes", len(content))
	s.publish(mec.EventPkgOnboarded, p)
	return p, nil
}

// check verifies the checksum and reads the package; a failure is a 422
// (or 400 for a malformed AppD) listing every wrong field.
func (s *Service) check(p mec.AppPackage, content []byte) (*appd.Package, *mec.Problem) {
	if err := appd.VerifyChecksum(content, appd.Checksum{Algorithm: p.Checksum.Algorithm, Hash: p.Checksum.Hash}); err != nil {
		return nil, mec.Errorf(http.StatusUnprocessableEntity, []mec.InvalidParam{{Name: "checksum", Reason: err.Error()}},
			"package content does not match the checksum given at creation")
	}
	pkg, err := appd.ReadPackage(content, s.opts.Limits)
	if err != nil {
		var ve *appd.ValidationError
		if errors.As(err, &ve) {
			params := make([]mec.InvalidParam, 0, len(ve.Errors))
			for _, fe := range ve.Errors {
				params = append(params, mec.InvalidParam{Name: fe.Path, Reason: fe.Reason})
			}
			return nil, mec.Errorf(http.StatusUnprocessableEntity, params, "app package refused: %d problem(s)", len(params))
		}
		return nil, mec.Errorf(http.StatusUnprocessableEntity, []mec.InvalidParam{{Name: "package", Reason: err.Error()}}, "app package refused: %v", err)
	}
	return pkg, nil
}

// fill copies what onboarding learnt into the package resource.
func fill(p *mec.AppPackage, pkg *appd.Package, content []byte, contentType string) error {
	a := pkg.AppD
	doc, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode AppD: %w", err)
	}
	p.AppD = doc
	p.AppDID = a.AppDID
	p.AppName = a.AppName
	if a.AppProvider != "" {
		p.AppProvider = a.AppProvider
	}
	p.AppSoftwareVersion = a.AppSoftVersion
	p.AppDVersion = a.AppDVersion
	p.MecInfo = a.MecVersion
	p.SoftwareImages = p.SoftwareImages[:0]
	for _, im := range pkg.SoftwareImages {
		p.SoftwareImages = append(p.SoftwareImages, mec.SoftwareImage{
			ID: im.ID, Name: im.Name, Version: im.Version, Path: im.Path,
			Checksum: mec.Checksum{Algorithm: "SHA-256", Hash: im.SHA256}, SizeBytes: im.Size,
		})
	}
	p.Artifacts = p.Artifacts[:0]
	for _, f := range pkg.Files {
		p.Artifacts = append(p.Artifacts, f.Path)
	}
	p.OnboardingState = mec.PkgOnboarded
	p.OperationalState = mec.PkgEnabled
	p.OnboardingFailure = nil
	p.ContentSize = int64(len(content))
	p.ContentType = contentType
	return nil
}

// Recover returns packages left PROCESSING by a crashed server to CREATED
// with a failure saying so: their upload was never acknowledged. Only those
// PROCESSING for longer than olderThan are touched, so that a replica that
// starts, or a periodic sweep, never resets an upload another replica is
// still checking.
func (s *Service) Recover(ctx context.Context, olderThan time.Duration) (int, error) {
	n := 0
	err := s.store.Update(ctx, func(tx mec.Tx) error {
		n = 0
		recs, err := tx.List(mec.KindAppPackage)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			var p mec.AppPackage
			if err := json.Unmarshal(rec.Doc, &p); err != nil {
				return fmt.Errorf("decode app package %q: %w", rec.ID, err)
			}
			if p.OnboardingState != mec.PkgProcessing && p.OnboardingState != mec.PkgUploading {
				continue
			}
			if p.ProcessingSince != nil && s.clock().Sub(*p.ProcessingSince) < olderThan {
				continue
			}
			p.ProcessingSince = nil
			p.OnboardingState = mec.PkgCreated
			p.OnboardingFailure = &mec.Problem{Status: http.StatusServiceUnavailable, Detail: "onboarding was interrupted by a restart; upload the content again"}
			if _, err := mec.Save(tx, mec.KindAppPackage, p.ID, p, rec.Version); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

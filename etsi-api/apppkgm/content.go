package apppkgm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
)

// getAppD is GET /onboarded_app_packages/{appDId}/appd. The AppD is kept as
// JSON; YAML, the form it has inside a package, is given to clients that
// ask for it (text/plain is the media type of the v2.1.1 file).
func (h *Handler) getAppD(w http.ResponseWriter, r *http.Request) {
	format := negotiate(r, "application/json", "application/yaml", "text/plain", "text/yaml", "application/x-yaml")
	if format == "" {
		h.fail(w, r, &problem.Error{Status: http.StatusNotAcceptable,
			Detail: "the AppD is available as application/json, application/yaml or text/plain (YAML); Accept was " +
				strconv.Quote(r.Header.Get("Accept"))})
		return
	}
	p, err := h.pkgFor(r.Context(), r.PathValue("appDId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if p.OnboardingState != mec.PkgOnboarded || len(p.AppD) == 0 {
		h.fail(w, r, problem.New(http.StatusConflict,
			fmt.Sprintf("app package %s is %s: its AppD is known once it is ONBOARDED", p.ID, p.OnboardingState)))
		return
	}
	body, ctype := []byte(p.AppD), "application/json"
	if format != "application/json" {
		if body, err = jsonToYAML(p.AppD); err != nil {
			h.fail(w, r, fmt.Errorf("AppD of %s as YAML: %w", p.ID, err))
			return
		}
		ctype = format
		if strings.HasPrefix(format, "text/") {
			ctype += "; charset=utf-8"
		}
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// jsonToYAML re-encodes a JSON document as block-style YAML, keeping the
// order of its keys.
func jsonToYAML(doc []byte) ([]byte, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(doc, &n); err != nil {
		return nil, err
	}
	var plain func(*yaml.Node)
	plain = func(n *yaml.Node) {
		// JSON parses as flow collections and quoted strings; clearing
		// the style lets the encoder write block style and quote only
		// what would otherwise read as another type.
		n.Style = 0
		for _, c := range n.Content {
			plain(c)
		}
	}
	plain(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// getContent is GET …/package_content: the zip as uploaded, with Range
// support. Its ETag is the checksum the content was verified against at
// onboarding, which names these exact bytes. No Last-Modified is sent: the
// upload time is not recorded and the creation time would be a lie.
func (h *Handler) getContent(w http.ResponseWriter, r *http.Request) {
	if negotiate(r, "application/zip") == "" {
		h.fail(w, r, &problem.Error{Status: http.StatusNotAcceptable,
			Detail: "package content is application/zip; Accept was " + strconv.Quote(r.Header.Get("Accept"))})
		return
	}
	// Ownership is checked before the content is read: it may be large.
	owned, err := h.pkgFor(r.Context(), r.PathValue("appDId"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	p, data, err := h.cat.Content(r.Context(), owned.ID)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("ETag", `"`+strings.ToLower(p.Checksum.Hash)+`"`)
	pw := &problemWriter{ResponseWriter: w}
	http.ServeContent(pw, r, "", time.Time{}, bytes.NewReader(data))
	pw.finish(r)
}

// problemWriter turns the plain-text errors of http.ServeContent (416,
// 412) into ProblemDetails, keeping the headers it set (Content-Range).
type problemWriter struct {
	http.ResponseWriter
	status int
	text   bytes.Buffer
}

func (p *problemWriter) WriteHeader(status int) {
	if status >= 400 {
		p.status = status
		return
	}
	p.ResponseWriter.WriteHeader(status)
}

func (p *problemWriter) Write(b []byte) (int, error) {
	if p.status != 0 {
		return p.text.Write(b)
	}
	return p.ResponseWriter.Write(b)
}

func (p *problemWriter) finish(r *http.Request) {
	if p.status == 0 {
		return
	}
	problem.Write(p.ResponseWriter, r, problem.Details{Status: p.status, Detail: strings.TrimSpace(p.text.String())})
}

// putContent is PUT …/package_content: the zip as the raw body
// (application/zip) or as the "file" part of a multipart/form-data form.
// Onboarding is synchronous, so a refused package is answered at once with
// every reason (422); an accepted one gets 202 with no content, the answer
// the ETSI file specifies, by which time the package is already ONBOARDED.
func (h *Handler) putContent(w http.ResponseWriter, r *http.Request) {
	ref := r.PathValue("appDId")
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || !isZipType(mt) && mt != "multipart/form-data" {
		h.fail(w, r, checkContentType(r, "application/zip", "multipart/form-data"))
		return
	}
	// Refuse before reading what may be a large body.
	limit := h.cfg.MaxUploadBytes
	if mt == "multipart/form-data" {
		limit += multipartSlack
	}
	if r.ContentLength > limit {
		h.fail(w, r, tooLarge(h.cfg.MaxUploadBytes))
		return
	}
	p, err := h.pkgFor(r.Context(), ref)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if p.OnboardingState != mec.PkgCreated {
		h.fail(w, r, problem.New(http.StatusConflict,
			fmt.Sprintf("app package %s is %s; content can be uploaded only in CREATED", p.ID, p.OnboardingState)))
		return
	}
	select {
	case h.uploads <- struct{}{}:
		defer func() { <-h.uploads }()
	default:
		w.Header().Set("Retry-After", "10")
		h.fail(w, r, problem.New(http.StatusServiceUnavailable,
			fmt.Sprintf("%d package uploads are in progress, the most this server holds at once; retry", cap(h.uploads))))
		return
	}
	var data []byte
	if mt == "multipart/form-data" {
		data, err = h.readFilePart(w, r)
	} else {
		data, err = io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxUploadBytes))
		if err != nil {
			err = bodyReadError(err, h.cfg.MaxUploadBytes)
		} else if len(data) == 0 {
			err = problem.Invalid("the package content is empty", mec.InvalidParam{Name: "body", Reason: "must be the package zip"})
		}
	}
	if err != nil {
		h.fail(w, r, err)
		return
	}
	if _, err := h.cat.Upload(r.Context(), p.ID, data, "application/zip"); err != nil {
		h.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

func isZipType(mt string) bool {
	switch mt {
	case "application/zip", "application/x-zip-compressed", "application/octet-stream":
		return true
	}
	return false
}

func tooLarge(limit int64) error {
	return &problem.Error{Status: http.StatusRequestEntityTooLarge,
		Detail: fmt.Sprintf("the package exceeds the upload limit of %d bytes", limit)}
}

// multipartSlack is what a form may carry besides the file: boundaries,
// part headers, small fields.
const multipartSlack = 64 << 10

// readFilePart streams a multipart form and returns its "file" part,
// without spooling the form to disk as ParseMultipartForm would.
func (h *Handler) readFilePart(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := h.cfg.MaxUploadBytes
	r.Body = http.MaxBytesReader(w, r.Body, limit+multipartSlack)
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, problem.Invalid("malformed multipart/form-data: " + err.Error())
	}
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, problem.Invalid("the form has no file part",
				mec.InvalidParam{Name: "file", Reason: "required: the package zip"})
		}
		if err != nil {
			return nil, formError(err, limit)
		}
		if part.FormName() != "file" {
			if _, err := io.Copy(io.Discard, part); err != nil {
				return nil, formError(err, limit)
			}
			continue
		}
		data, err := io.ReadAll(io.LimitReader(part, limit+1))
		if err != nil {
			return nil, formError(err, limit)
		}
		if int64(len(data)) > limit {
			return nil, tooLarge(limit)
		}
		if len(data) == 0 {
			return nil, problem.Invalid("the package content is empty",
				mec.InvalidParam{Name: "file", Reason: "must be the package zip"})
		}
		return data, nil
	}
}

func formError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(limit)
	}
	return problem.Invalid("malformed multipart/form-data: " + err.Error())
}

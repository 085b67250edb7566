package agentclient

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/mecorch/mecorch/mec/agentproto"
)

// maxImageBytes bounds a software image download (and what an archive may
// unpack to).
const maxImageBytes = 512 << 20

// exeMarker is the file, in an unpacked image's directory, that names the
// executable; its presence says the unpacking completed.
const exeMarker = ".exe"

// Images fetches instances' software images from mecorch
// (GET /api/v1/hosts/{hostId}/app_instances/{id}/image) into a cache
// directory keyed by content hash, and unpacks archives. The image is either
// an executable or a tar, tar.gz or zip archive holding one.
type Images struct {
	api    string
	hostID string
	dir    string
	tokens *Tokens
	http   *http.Client
	// maxBytes bounds a download and what an archive unpacks to
	// (maxImageBytes; tests lower it).
	maxBytes int64
}

// NewImages returns an image fetcher caching under dir. A nil hc means
// http.DefaultClient.
func NewImages(api, hostID, dir string, tokens *Tokens, hc *http.Client) *Images {
	if hc == nil {
		hc = http.DefaultClient
	}
	// The per-instance links point at absolute paths: a relative dir would
	// make them dangle.
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return &Images{api: strings.TrimRight(api, "/"), hostID: hostID, dir: dir, tokens: tokens, http: hc, maxBytes: maxImageBytes}
}

// Fetch returns the path of the instance's executable. Images already
// fetched for the instance are reused, so an agent that restarts while
// mecorch is unreachable can still start what it ran.
func (im *Images) Fetch(ctx context.Context, in agentproto.DesiredInstance) (string, error) {
	byInst := filepath.Join(im.dir, "instances", in.ID)
	if target, err := os.Readlink(byInst); err == nil {
		if _, err := os.Stat(target); err == nil {
			return target, nil
		}
	}
	name, data, err := im.download(ctx, in.ID)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	key := hex.EncodeToString(sum[:])
	dir := filepath.Join(im.dir, "sha256", key)
	exe, err := unpack(dir, name, data, im.maxBytes)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(byInst), 0o700); err != nil {
		return "", err
	}
	tmp := byInst + ".tmp"
	_ = os.Remove(tmp)
	if err := os.Symlink(exe, tmp); err != nil {
		return "", err
	}
	return exe, os.Rename(tmp, byInst)
}

// Forget drops the instance's link to its image (the instance is gone).
func (im *Images) Forget(id string) { _ = os.Remove(filepath.Join(im.dir, "instances", id)) }

func (im *Images) download(ctx context.Context, id string) (string, []byte, error) {
	token, err := im.tokens.Get(ctx)
	if err != nil {
		return "", nil, err
	}
	u := fmt.Sprintf("%s/api/v1/hosts/%s/app_instances/%s/image", im.api, url.PathEscape(im.hostID), url.PathEscape(id))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := im.http.Do(req)
	if err != nil {
		return "", nil, fmt.Errorf("download image: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		im.tokens.Forget()
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return "", nil, fmt.Errorf("download image: %s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, im.maxBytes+1))
	if err != nil {
		return "", nil, fmt.Errorf("download image: %w", err)
	}
	if int64(len(data)) > im.maxBytes {
		return "", nil, fmt.Errorf("download image: larger than %d bytes", im.maxBytes)
	}
	if want := resp.Header.Get("X-Mecorch-Image-Sha256"); want != "" {
		sum := sha256.Sum256(data)
		if !strings.EqualFold(want, hex.EncodeToString(sum[:])) {
			return "", nil, errors.New("download image: the content does not match its SHA-256")
		}
	}
	name := filepath.Base(resp.Header.Get("X-Mecorch-Image-Name"))
	switch name {
	case "", ".", "..", "/", exeMarker:
		name = "image"
	}
	return name, data, nil
}

// unpack writes the image under dir (once: dir is named by the content's
// hash) and returns the executable's path. An archive may unpack to at most
// limit bytes.
func unpack(dir, name string, data []byte, limit int64) (string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, exeMarker)); err == nil {
		// An executable deleted from the cache is unpacked again.
		if _, err := os.Stat(string(b)); err == nil {
			return string(b), nil
		}
	}
	// The image tree is readable by all: instances may run as an
	// unprivileged user (mec-agent --run-as), which must reach its
	// executable and the files beside it. Nothing secret is kept here.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	// A temp dir of its own: two fetches of the same content must not
	// unpack into one another's files.
	tmp, err := os.MkdirTemp(filepath.Dir(dir), filepath.Base(dir)+".tmp")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	var rel string
	switch {
	case strings.HasSuffix(name, ".tar.gz"), strings.HasSuffix(name, ".tgz"):
		zr, gerr := gzip.NewReader(bytes.NewReader(data))
		if gerr != nil {
			return "", fmt.Errorf("image %s: %w", name, gerr)
		}
		rel, err = untar(tmp, zr, limit)
	case strings.HasSuffix(name, ".tar"):
		rel, err = untar(tmp, bytes.NewReader(data), limit)
	case strings.HasSuffix(name, ".zip"):
		rel, err = unzip(tmp, data, limit)
	default:
		rel = name
		err = os.WriteFile(filepath.Join(tmp, name), data, 0o755)
	}
	if err != nil {
		return "", fmt.Errorf("image %s: %w", name, err)
	}
	if rel == "" {
		return "", fmt.Errorf("image %s: the archive holds no executable file", name)
	}
	exe := filepath.Join(dir, rel)
	if err := os.WriteFile(filepath.Join(tmp, exeMarker), []byte(exe), 0o600); err != nil {
		return "", err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return exe, nil
}

// safeRel refuses archive paths that would land outside the image dir.
func safeRel(p string) (string, error) {
	c := filepath.Clean(p)
	if filepath.IsAbs(c) || c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("archive entry %q leaves the image directory", p)
	}
	if c == exeMarker {
		return "", fmt.Errorf("archive entry %q collides with the image cache's own file", p)
	}
	return c, nil
}

// untar extracts regular files and returns the first executable (by
// archive order; an entry at the top level wins over deeper ones).
func untar(dir string, r io.Reader, limit int64) (string, error) {
	tr := tar.NewReader(r)
	var exe string
	var total int64
	for {
		hd, err := tr.Next()
		if err == io.EOF {
			return exe, nil
		}
		if err != nil {
			return "", err
		}
		if hd.Typeflag != tar.TypeReg {
			continue // directories are made as needed; links are not followed
		}
		rel, err := safeRel(hd.Name)
		if err != nil {
			return "", err
		}
		// Compared before adding: declared sizes near MaxInt64 would wrap
		// the sum and let a gzip bomb through.
		if hd.Size < 0 || hd.Size > limit-total {
			return "", fmt.Errorf("unpacks to more than the image limit (%d bytes)", limit)
		}
		total += hd.Size
		if err := writeFile(filepath.Join(dir, rel), io.LimitReader(tr, hd.Size), os.FileMode(hd.Mode)&0o755); err != nil {
			return "", err
		}
		exe = better(exe, rel, hd.Mode&0o111 != 0)
	}
}

func unzip(dir string, data []byte, limit int64) (string, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return "", err
	}
	var exe string
	var total int64
	for _, f := range zr.File {
		if !f.Mode().IsRegular() {
			continue
		}
		rel, err := safeRel(f.Name)
		if err != nil {
			return "", err
		}
		if f.UncompressedSize64 > uint64(limit-total) {
			return "", fmt.Errorf("unpacks to more than the image limit (%d bytes)", limit)
		}
		total += int64(f.UncompressedSize64)
		rc, err := f.Open()
		if err != nil {
			return "", err
		}
		// Read to the end: the zip reader stops at the declared size and
		// checks the CRC only there.
		err = writeFile(filepath.Join(dir, rel), rc, f.Mode().Perm()&0o755)
		rc.Close()
		if err != nil {
			return "", err
		}
		exe = better(exe, rel, f.Mode()&0o111 != 0)
	}
	return exe, nil
}

// better picks the executable to run: executable files only, shallower
// paths first, then archive order.
func better(cur, cand string, executable bool) string {
	if !executable {
		return cur
	}
	if cur == "" || strings.Count(cand, "/") < strings.Count(cur, "/") {
		return cand
	}
	return cur
}

func writeFile(path string, r io.Reader, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode|0o444)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/mecorch/mecorch/mec/agentproto"
)

const desiredFile = "desired.json"

// loadDesired reads the desired state kept on disk; nil when there is none.
func loadDesired(dir string) (*agentproto.DesiredState, error) {
	data, err := os.ReadFile(filepath.Join(dir, desiredFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the kept desired state: %w", err)
	}
	var ds agentproto.DesiredState
	if err := json.Unmarshal(data, &ds); err != nil {
		return nil, fmt.Errorf("the kept desired state %s is corrupt: %w", filepath.Join(dir, desiredFile), err)
	}
	return &ds, nil
}

// saveDesired writes ds so that a crash at any point leaves either the old
// file or the new one: a temporary file, synced, renamed over the old, and
// the directory synced.
func saveDesired(dir string, ds agentproto.DesiredState) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keep desired state: %w", err)
	}
	data, err := json.Marshal(ds)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, desiredFile+".*")
	if err != nil {
		return fmt.Errorf("keep desired state: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("keep desired state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("keep desired state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("keep desired state: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, desiredFile)); err != nil {
		return fmt.Errorf("keep desired state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("keep desired state: %w", err)
	}
	defer d.Close()
	return d.Sync()
}

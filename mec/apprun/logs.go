package apprun

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// The process writes its stdout and stderr straight into the log file,
// opened with O_APPEND, so that its output outlives the agent. The agent
// therefore cannot rotate by renaming (the process would go on writing
// into the renamed file): it copies the tail of the file to name.1 and
// truncates the file, after which the process's appends start again at
// offset 0. What the process writes between the copy and the truncation
// is lost; that is the price of a bound on disk use without the
// process's help.

// rotateLog moves the last limit bytes of path to path.1 and empties
// path, if path is over limit.
func rotateLog(path string, limit int64) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	if fi.Size() <= limit {
		return nil
	}
	// Copy the tail, then whatever was appended meanwhile, until the size
	// holds still: the bytes lost are only those written between the last
	// look and the truncation.
	var tail bytes.Buffer
	from, to := fi.Size()-limit, fi.Size()
	for range 4 {
		if _, err = tail.ReadFrom(io.NewSectionReader(f, from, to-from)); err != nil {
			return fmt.Errorf("rotate log: %w", err)
		}
		if fi, err = f.Stat(); err != nil || fi.Size() <= to {
			break
		}
		from, to = to, fi.Size()
	}
	b := tail.Bytes()
	if err := os.WriteFile(path+".1.tmp", b[max(0, int64(len(b))-limit):], 0o640); err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	if err := os.Rename(path+".1.tmp", path+".1"); err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	if err := os.Truncate(path, 0); err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	return nil
}

// tailLog returns the last maxBytes of path.1 followed by path, and
// whether there was more before.
func tailLog(path string, maxBytes int) ([]byte, bool, error) {
	if maxBytes <= 0 {
		return nil, false, fmt.Errorf("logs: maxBytes %d", maxBytes)
	}
	cur, curMore, err := tailFile(path, int64(maxBytes))
	if err != nil {
		return nil, false, err
	}
	if curMore {
		return cur, true, nil
	}
	if len(cur) == maxBytes {
		fi, err := os.Stat(path + ".1")
		return cur, err == nil && fi.Size() > 0, nil
	}
	old, oldMore, err := tailFile(path+".1", int64(maxBytes-len(cur)))
	if err != nil {
		return nil, false, err
	}
	return append(old, cur...), oldMore, nil
}

// tailFile returns the last n bytes of a file (none if it is missing) and
// whether it holds more.
func tailFile(path string, n int64) ([]byte, bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("logs: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, false, fmt.Errorf("logs: %w", err)
	}
	size := fi.Size()
	off := max(size-n, 0)
	b := make([]byte, size-off)
	// The file may shrink meanwhile (a rotation): take what there is.
	k, err := f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, false, fmt.Errorf("logs: %w", err)
	}
	return b[:k], off > 0, nil
}

package appd

import (
	"archive/zip"
	"io/fs"
	"strconv"
	"strings"
	"unicode/utf8"
)

// checkEntries refuses archives that could hurt whoever reads or extracts
// them, before anything is inflated: too many entries, declared sizes over
// the limits (actual sizes are counted again while reading), unsafe names,
// symlinks and other special files, encrypted or oddly compressed entries,
// and names that collide. It returns the regular files by name and the set
// of directories (explicit or implied by a file's path).
func checkEntries(zr *zip.Reader, lim Limits) (map[string]*zip.File, map[string]bool, *ValidationError) {
	if n := len(zr.File); n > lim.MaxEntries {
		return nil, nil, invalid("package", "has %d entries, more than the limit of %d", n, lim.MaxEntries)
	}
	files := map[string]*zip.File{}
	dirs := map[string]bool{}
	folded := map[string]string{}
	var declared uint64
	for _, f := range zr.File {
		q := strconv.Quote(f.Name)
		mode := f.Mode()
		isDir := strings.HasSuffix(f.Name, "/") || mode.IsDir()
		name := strings.TrimSuffix(f.Name, "/")
		if err := checkEntryName(name); err != nil {
			return nil, nil, invalid("package", "entry %s: %v", q, err)
		}
		switch {
		case mode&fs.ModeSymlink != 0:
			return nil, nil, invalid("package", "entry %s is a symbolic link; links are not allowed", q)
		case isDir:
			if f.UncompressedSize64 != 0 {
				return nil, nil, invalid("package", "directory entry %s has content", q)
			}
		case !mode.IsRegular():
			return nil, nil, invalid("package", "entry %s is not a regular file (mode %v)", q, mode)
		case f.Flags&0x1 != 0:
			return nil, nil, invalid("package", "entry %s is encrypted", q)
		case f.Method != zip.Store && f.Method != zip.Deflate:
			return nil, nil, invalid("package", "entry %s uses compression method %d; only stored and deflated entries are supported", q, f.Method)
		case f.UncompressedSize64 > uint64(lim.MaxFileSize):
			return nil, nil, invalid("package", "entry %s declares %d bytes, more than the per-file limit of %d", q, f.UncompressedSize64, lim.MaxFileSize)
		}
		declared += f.UncompressedSize64
		if declared > uint64(lim.MaxInflated) {
			return nil, nil, invalid("package", "entries declare more than %d bytes in total", lim.MaxInflated)
		}
		// Names that differ only in case would overwrite each other when
		// extracted on a case-insensitive file system.
		key := strings.ToLower(name)
		if prev, dup := folded[key]; dup {
			if prev == name {
				return nil, nil, invalid("package", "entry %s appears more than once", q)
			}
			return nil, nil, invalid("package", "entries %s and %s differ only in case", strconv.Quote(prev), q)
		}
		folded[key] = name
		if isDir {
			dirs[name] = true
		} else {
			files[name] = f
		}
	}
	for name := range files {
		for i := strings.IndexByte(name, '/'); i >= 0; i = next(name, i) {
			parent := name[:i]
			if files[parent] != nil {
				return nil, nil, invalid("package", "%s is both a file and a directory", strconv.Quote(parent))
			}
			dirs[parent] = true
		}
	}
	return files, dirs, nil
}

func next(s string, i int) int {
	j := strings.IndexByte(s[i+1:], '/')
	if j < 0 {
		return -1
	}
	return i + 1 + j
}

// checkEntryName accepts only clean relative slash-separated paths.
func checkEntryName(name string) error {
	switch {
	case name == "":
		return errorString("empty name")
	case !utf8.ValidString(name):
		return errorString("name is not valid UTF-8")
	case strings.ContainsRune(name, '\\'):
		return errorString("name contains a backslash")
	case strings.HasPrefix(name, "/"):
		return errorString("absolute path")
	case len(name) >= 2 && name[1] == ':' && (name[0]|0x20 >= 'a' && name[0]|0x20 <= 'z'):
		return errorString("absolute path (drive letter)")
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return errorString("name contains a control character")
		}
	}
	for _, el := range strings.Split(name, "/") {
		switch el {
		case "..":
			return errorString("path escapes the package root (..)")
		case "", ".":
			return errorString("path is not clean (empty or \".\" element)")
		}
	}
	return nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

package appd

import (
	"fmt"
	"strings"
)

// The two text files of a CSAR (ETSI GS NFV-SOL 004): TOSCA.meta, which
// names the entry definitions and the manifest, and the manifest, which
// holds the package metadata and a hash for every file. Both parsers report
// problems as "line N: …" reasons; the caller adds the file's path.

const toscaMetaPath = "TOSCA-Metadata/TOSCA.meta"

// Required TOSCA.meta keys (SOL004 clause 4.2).
func requiredMetaKeys() []string {
	return []string{"TOSCA-Meta-File-Version", "CSAR-Version", "Created-By", "Entry-Definitions"}
}

// Required manifest metadata for a MEC application package.
func requiredManifestKeys() []string {
	return []string{"app_provider_id", "app_product_name", "app_release_date_time", "app_package_version"}
}

func textLines(data []byte) []string {
	s := strings.TrimPrefix(string(data), "\uFEFF")
	s = strings.ReplaceAll(s, "\r\n", "\n")
	return strings.Split(s, "\n")
}

// parseToscaMeta reads the first block of "Key: Value" lines. TOSCA 1.0
// allowed further blocks describing single files; they are checked for
// syntax and otherwise ignored.
func parseToscaMeta(data []byte) (map[string]string, []string) {
	meta := map[string]string{}
	var problems []string
	block := 0
	for i, line := range textLines(data) {
		line = strings.TrimRight(line, " \t\r")
		if line == "" {
			if len(meta) > 0 {
				block++
			}
			continue
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(key) == "" {
			problems = append(problems, fmt.Sprintf("line %d: expected \"Key: Value\"", i+1))
			continue
		}
		if block > 0 {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if _, dup := meta[key]; dup {
			problems = append(problems, fmt.Sprintf("line %d: %s given twice", i+1, key))
			continue
		}
		meta[key] = val
	}
	for _, k := range requiredMetaKeys() {
		if meta[k] == "" {
			problems = append(problems, k+" is required")
		}
	}
	return meta, problems
}

type manifest struct {
	metadata map[string]string
	entries  []manifestEntry
	// signed names the files given as Signature or Certificate of an entry;
	// they need not be listed themselves.
	signed []string
}

type manifestEntry struct {
	source, algorithm, hash string
	line                    int
}

// parseManifest reads a SOL004 manifest: a "metadata:" block of indented
// "key: value" lines, then blocks of Source / Algorithm / Hash lines (with
// optional Signature and Certificate lines). Other blocks (such as
// non_mano_artifact_sets) and a trailing CMS signature are skipped; the
// signature is not verified.
func parseManifest(data []byte) (*manifest, []string) {
	m := &manifest{metadata: map[string]string{}}
	var problems []string
	bad := func(line int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("line %d: ", line)+fmt.Sprintf(format, args...))
	}
	const (
		none = iota
		inMetadata
		inOther
		inEntry
		inCMS
	)
	state := none
	seenMetadata := false
	var cur *manifestEntry
	for i, raw := range textLines(data) {
		n := i + 1
		line := strings.TrimRight(raw, " \t\r")
		if state == inCMS {
			if line == "-----END CMS-----" {
				state = none
			}
			continue
		}
		if line == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if line == "-----BEGIN CMS-----" {
			state = inCMS
			continue
		}
		indented := line[0] == ' ' || line[0] == '\t'
		key, val, ok := strings.Cut(strings.TrimSpace(line), ":")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" {
			bad(n, "expected \"key: value\"")
			continue
		}
		if indented {
			switch state {
			case inMetadata:
				if _, dup := m.metadata[key]; dup {
					bad(n, "metadata %s given twice", key)
				} else {
					m.metadata[key] = val
				}
			case inOther:
			default:
				bad(n, "unexpected indented line")
			}
			continue
		}
		switch key {
		case "metadata":
			if seenMetadata {
				bad(n, "second metadata block")
			}
			seenMetadata = true
			state = inMetadata
		case "Source":
			m.entries = append(m.entries, manifestEntry{source: val, line: n})
			cur = &m.entries[len(m.entries)-1]
			state = inEntry
		case "Algorithm", "Hash":
			if state != inEntry {
				bad(n, "%s without a preceding Source", key)
				continue
			}
			field := &cur.algorithm
			if key == "Hash" {
				field = &cur.hash
			}
			if *field != "" {
				bad(n, "second %s for %s", key, cur.source)
			}
			*field = val
		case "Signature", "Certificate":
			if state != inEntry {
				bad(n, "%s without a preceding Source", key)
				continue
			}
			m.signed = append(m.signed, val)
		default:
			// A block we do not use (non_mano_artifact_sets: …) or a newer
			// top-level key: skipped, so that newer manifests still load.
			state = inOther
		}
	}
	if state == inCMS {
		problems = append(problems, "CMS signature block is not terminated by -----END CMS-----")
	}
	seen := map[string]int{}
	for _, e := range m.entries {
		switch {
		case e.source == "":
			bad(e.line, "Source is empty")
		case e.algorithm == "" || e.hash == "":
			bad(e.line, "Source %s needs both Algorithm and Hash", e.source)
		}
		if first, dup := seen[e.source]; dup && e.source != "" {
			bad(e.line, "Source %s is already listed at line %d", e.source, first)
		} else {
			seen[e.source] = e.line
		}
	}
	return m, problems
}

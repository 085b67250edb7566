package agentproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/mecorch/mecorch/mec"
)

// Bounds of body fields.
const (
	MaxIDLen      = 128 // host, site and instance IDs
	maxVersionLen = 128
	maxLabelKey   = 128
	maxLabelValue = 1024
	maxTokenLen   = 16 << 10
	maxCodeLen    = 64
	maxAddrLen    = 256
)

// DecodeBody reads f's body into v, strictly (no unknown fields, no
// trailing data), and validates it when v is one of this package's body
// types: *Hello, *Welcome, *DesiredState, *Report (type status),
// *Heartbeat, *LogsRequest, *Logs, *Paths, *Error. A body type that does
// not belong to f.Type is refused with CodeUnexpected; anything else wrong
// is CodeBadFrame with the field paths in ProtocolError.Params.
func DecodeBody(f Frame, v any) error {
	if want := bodyTypeFor(v); want != "" && want != f.Type {
		return protoErr(CodeUnexpected, "a %s frame does not carry a %s body", truncate(f.Type, 64), want)
	}
	if len(bytes.TrimSpace(f.Body)) == 0 {
		return protoErr(CodeBadFrame, "%s body is missing", truncate(f.Type, 64))
	}
	dec := json.NewDecoder(bytes.NewReader(f.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return protoErr(CodeBadFrame, "%s body: %s", truncate(f.Type, 64), jsonReason(err))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return protoErr(CodeBadFrame, "%s body: trailing data after the JSON value", truncate(f.Type, 64))
	}
	return validate(v)
}

// bodyTypeFor names the message type whose body v is, or "" for a type
// this package does not know (decoded strictly, not validated).
func bodyTypeFor(v any) string {
	switch v.(type) {
	case *Hello:
		return TypeHello
	case *Welcome:
		return TypeWelcome
	case *DesiredState:
		return TypeDesired
	case *Report:
		return TypeStatus
	case *Heartbeat:
		return TypeHeartbeat
	case *LogsRequest:
		return TypeLogsRequest
	case *Logs:
		return TypeLogs
	case *Paths:
		return TypePaths
	case *Error:
		return TypeError
	}
	return ""
}

func validate(v any) error {
	var c checker
	switch b := v.(type) {
	case *Hello:
		c.id("hostId", b.HostID)
		c.id("siteId", b.SiteID)
		c.maxLen("agentVersion", b.AgentVersion, maxVersionLen)
		c.resources("capacity", b.Capacity)
		c.nonNegative("generation", b.Generation)
		for _, k := range slices.Sorted(maps.Keys(b.Labels)) {
			if k == "" || len(k) > maxLabelKey || !utf8.ValidString(k) {
				c.add("labels", fmt.Sprintf("a label key must be 1 to %d bytes of UTF-8", maxLabelKey))
				continue
			}
			c.maxLen("labels."+k, b.Labels[k], maxLabelValue)
		}
		if len(b.Token) > maxTokenLen {
			c.add("token", fmt.Sprintf("at most %d bytes", maxTokenLen)) // never the value
		}
		return invalid(TypeHello, c.params)
	case *Welcome:
		c.nonNegative("heartbeatIntervalMs", b.HeartbeatIntervalMs)
		c.maxLen("serverVersion", b.ServerVersion, maxVersionLen)
		return invalid(TypeWelcome, c.params)
	case *DesiredState:
		c.id("hostId", b.HostID)
		c.nonNegative("generation", b.Generation)
		seen := make(map[string]bool, len(b.Instances))
		for i, in := range b.Instances {
			p := "instances[" + strconv.Itoa(i) + "]"
			c.uniqueID(p+".id", in.ID, seen)
			c.maxLen(p+".appDId", in.AppDID, maxAddrLen)
			c.maxLen(p+".appPkgId", in.AppPkgID, maxAddrLen)
			c.oneOf(p+".state", in.State, DesiredRunning, DesiredStopped, DesiredAbsentState)
			c.resources(p+".resources", in.Resources)
			c.nonNegative(p+".stopGraceSeconds", int64(in.StopGraceSeconds))
		}
		return invalid(TypeDesired, c.params)
	case *Report:
		// hostId may be empty on HTTP (the path names the host); on the
		// channel the session compares it with the hello's.
		c.maxLen("hostId", b.HostID, MaxIDLen)
		c.nonNegative("generation", b.Generation)
		c.maxLen("agentVersion", b.AgentVersion, maxVersionLen)
		c.usage("usage", b.Usage)
		seen := make(map[string]bool, len(b.Instances))
		for i, in := range b.Instances {
			p := "instances[" + strconv.Itoa(i) + "]"
			c.uniqueID(p+".id", in.ID, seen)
			c.oneOf(p+".state", in.State, ObservedRunning, ObservedStopped, ObservedFailed)
			c.maxLen(p+".address", in.Address, maxAddrLen)
			c.nonNegative(p+".restarts", int64(in.Restarts))
			c.usage(p+".usage", in.Usage)
		}
		return invalid(TypeStatus, c.params)
	case *Heartbeat:
		if b.Time.IsZero() {
			c.add("time", "required")
		}
		c.nonNegative("generation", b.Generation)
		return invalid(TypeHeartbeat, c.params)
	case *LogsRequest:
		c.id("instanceId", b.InstanceID)
		if b.MaxBytes < 1 || b.MaxBytes > MaxFrameBytes {
			c.add("maxBytes", fmt.Sprintf("must be from 1 to %d", MaxFrameBytes))
		}
		return invalid(TypeLogsRequest, c.params)
	case *Logs:
		c.id("instanceId", b.InstanceID)
		return invalid(TypeLogs, c.params)
	case *Paths:
		for i, p := range b.Paths {
			pp := "paths[" + strconv.Itoa(i) + "]"
			c.required(pp+".local", p.Local, maxAddrLen)
			c.required(pp+".remote", p.Remote, maxAddrLen)
			c.oneOf(pp+".state", p.State, PathActive, PathInactive)
			c.nonNegative(pp+".srttMicros", p.SRTTMicros)
		}
		return invalid(TypePaths, c.params)
	case *Error:
		c.required("code", b.Code, maxCodeLen)
		return invalid(TypeError, c.params)
	}
	return nil
}

// checker collects every wrong field, so that one refusal names them all.
type checker struct{ params []mec.InvalidParam }

func (c *checker) add(path, reason string) {
	c.params = append(c.params, mec.InvalidParam{Name: path, Reason: reason})
}

func (c *checker) id(path, v string) { c.required(path, v, MaxIDLen) }

func (c *checker) required(path, v string, max int) {
	if v == "" {
		c.add(path, "required")
		return
	}
	c.maxLen(path, v, max)
}

func (c *checker) maxLen(path, v string, max int) {
	if len(v) > max {
		c.add(path, fmt.Sprintf("at most %d bytes", max))
	} else if !utf8.ValidString(v) {
		c.add(path, "not valid UTF-8")
	}
}

func (c *checker) uniqueID(path, v string, seen map[string]bool) {
	c.id(path, v)
	if v == "" {
		return
	}
	if seen[v] {
		c.add(path, "duplicate instance id "+strconv.Quote(truncate(v, MaxIDLen)))
	}
	seen[v] = true
}

func (c *checker) oneOf(path, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	reason := "must be one of"
	for i, a := range allowed {
		if i > 0 {
			reason += ","
		}
		reason += " " + a
	}
	c.add(path, reason)
}

func (c *checker) nonNegative(path string, v int64) {
	if v < 0 {
		c.add(path, "must not be negative")
	}
}

func (c *checker) resources(path string, r mec.Resources) {
	c.nonNegative(path+".milliCpu", r.MilliCPU)
	c.nonNegative(path+".memoryMiB", r.MemoryMiB)
	c.nonNegative(path+".storageGB", r.StorageGB)
	c.nonNegative(path+".gpus", r.GPUs)
}

func (c *checker) usage(path string, u *Usage) {
	if u == nil {
		return
	}
	c.nonNegative(path+".milliCpu", u.MilliCPU)
	c.nonNegative(path+".memoryBytes", u.MemoryBytes)
}

package applcm

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"

	"github.com/mecorch/mecorch/mec"
)

// Limits on request content: generous for any real request, small enough
// that one request cannot make placement or storage expensive.
const (
	maxNameLen        = 256
	maxDescriptionLen = 4096
	maxIDLen          = 256
	maxListLen        = 256   // host IDs, site IDs, zones, labels
	maxAreaPositions  = 10000 // over all rings of a polygon
	maxAreaRings      = 64
	// maxTimeoutSeconds bounds graceful timeouts to what the agent can
	// hold as a time.Duration and the spec's uint32-ish integers.
	maxTimeoutSeconds = math.MaxInt32
)

// waitForever is the grace of a GRACEFUL termination without a timeout: the
// spec says to wait for the app to leave service "no matter how long it
// takes"; the domain has no "for ever", and 68 years is as good.
const waitForever = math.MaxInt32

// createInput is a decoded CreateAppInstanceRequest.
type createInput struct {
	AppDID, Name, Description string
}

func decodeCreate(body []byte) (createInput, error) {
	var rp report
	o, _ := parseBody(&rp, body)
	if o == nil && len(rp.bad) == 0 {
		rp.add("appDId", "required")
	}
	var in createInput
	if o != nil {
		in.AppDID = o.str("appDId", true, maxIDLen)
		in.Name = o.str("appInstanceName", false, maxNameLen)
		in.Description = o.str("appInstanceDescription", false, maxDescriptionLen)
		// appPlacementInfo names a MEC platform on Mm3*; mecorch places
		// at instantiation, so it is checked for shape and not used.
		if pi := o.obj("appPlacementInfo"); pi != nil {
			pi.str("mepId", true, maxIDLen)
			pi.str("mepName", false, maxNameLen)
			pi.unknown()
		}
		o.unknown()
	}
	return in, rp.err("CreateAppInstanceRequest")
}

// instantiateInput is a decoded InstantiateAppRequest: the placement
// constraints, and the AppD attributes the request overrides (NOTE 1 of
// 6.2.2.7), kept raw until they are laid over the package's AppD.
type instantiateInput struct {
	Constraints mec.PlacementConstraints
	Compute     json.RawMessage // virtualComputeDescriptor
	Containers  json.RawMessage // osContainerDescriptor
	Storage     json.RawMessage // virtualStorageDescriptor
	// Params is the request as sent, for the operation's operationParams.
	Params json.RawMessage
}

// placementExt is the member name of mecorch's placement extension.
const placementExt = "x-mecorch-placement"

// decodeInstantiate reads an InstantiateAppRequest. An empty body is an
// instantiation anywhere: selectedMECHostInfo is required by the schema but
// applies to Mm3 only (NOTE 2), and mecorch chooses the host itself.
func decodeInstantiate(body []byte) (instantiateInput, error) {
	var rp report
	var in instantiateInput
	o, _ := parseBody(&rp, body)
	if o == nil {
		in.Params = json.RawMessage(`{}`)
		return in, rp.err("InstantiateAppRequest")
	}
	in.Params = compact(body)
	var rewritten bool
	in.Constraints.HostIDs, rewritten = selectedHosts(o)
	if rewritten && len(rp.bad) == 0 {
		in.Params = withHostObjects(o, in.Constraints.HostIDs)
	}
	if lc := o.obj("locationConstraints"); lc != nil {
		decodeLocation(lc, &in.Constraints)
	}
	if ext := o.obj(placementExt); ext != nil {
		decodePlacementExt(ext, &in.Constraints)
	}
	in.Compute = o.raw("virtualComputeDescriptor")
	in.Containers = o.raw("osContainerDescriptor")
	in.Storage = o.raw("virtualStorageDescriptor")
	if in.Compute != nil && in.Containers != nil {
		// NOTE 4: only one of them shall be present.
		rp.add("virtualComputeDescriptor", "only one of virtualComputeDescriptor and osContainerDescriptor may be present")
		rp.add("osContainerDescriptor", "only one of virtualComputeDescriptor and osContainerDescriptor may be present")
	}
	// Accepted for conformance and not used: mecorch manages its hosts
	// itself (no VIM) and pre-empts nothing.
	for _, name := range []string{"vimConnectionInfo", "appTermCandsForCoord"} {
		o.raw(name)
	}
	o.unknown()
	return in, rp.err("InstantiateAppRequest")
}

// selectedHosts reads selectedMECHostInfo[].hostId. The v3 schema makes
// hostId an object ("deployment-specific information"); mecorch's host IDs
// are strings, so a string, or an object with a string hostId or id, is
// accepted. rewritten tells that some hostId was a string.
func selectedHosts(o *object) (ids []string, rewritten bool) {
	const name = "selectedMECHostInfo"
	raw := o.raw(name)
	if raw == nil {
		return nil, false
	}
	items := o.array(name)
	if items == nil {
		return nil, false
	}
	if len(items) == 0 {
		o.rp.add(name, "must list at least one host")
	}
	if len(items) > maxListLen {
		o.rp.add(name, "lists more than %d hosts", maxListLen)
		return nil, false
	}
	for i, item := range items {
		path := index(name, i)
		hi, _ := parseObject(o.rp, path, item)
		if hi == nil {
			if isNull(item) {
				o.rp.add(path, "must be a MECHostInformation object")
			}
			continue
		}
		hi.str("hostName", false, maxNameLen)
		if raw := hi.members["hostId"]; len(raw) > 0 && bytes.TrimSpace(raw)[0] == '"' {
			rewritten = true
		}
		if id := hostID(hi); id != "" {
			ids = append(ids, id)
		}
		hi.unknown()
	}
	return ids, rewritten
}

// withHostObjects is the request as sent, with every selectedMECHostInfo
// hostId in the schema's object form ({"id": ...}), for operationParams:
// what is answered conforms to the file even when what was sent is the
// string shorthand.
func withHostObjects(o *object, ids []string) json.RawMessage {
	type hostRef struct {
		ID string `json:"id"`
	}
	var items []map[string]any
	if err := json.Unmarshal(o.members["selectedMECHostInfo"], &items); err != nil || len(items) != len(ids) {
		return compactMembers(o.members)
	}
	for i := range items {
		items[i]["hostId"] = hostRef{ID: ids[i]}
	}
	members := make(map[string]json.RawMessage, len(o.members))
	for k, v := range o.members {
		members[k] = v
	}
	b, err := json.Marshal(items)
	if err != nil {
		return compactMembers(o.members)
	}
	members["selectedMECHostInfo"] = b
	return compactMembers(members)
}

func compactMembers(m map[string]json.RawMessage) json.RawMessage {
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	return b
}

func hostID(hi *object) string {
	raw := hi.raw("hostId")
	path := hi.at("hostId")
	if raw == nil {
		hi.rp.add(path, "required")
		return ""
	}
	if bytes.TrimSpace(raw)[0] == '{' {
		ho, _ := parseObject(hi.rp, path, raw)
		if ho == nil {
			return ""
		}
		id := ho.str("hostId", false, maxIDLen)
		if alt := ho.str("id", false, maxIDLen); id == "" {
			id = alt
		}
		ho.unknown()
		if strings.TrimSpace(id) == "" {
			hi.rp.add(path, "must name the host: a string, or an object with a string hostId or id")
		}
		return id
	}
	id := hi.str("hostId", true, maxIDLen)
	return id
}

// decodeLocation reads LocationConstraints. civicAddressElement is refused
// rather than ignored: mecorch cannot place by civic address, and dropping
// the constraint silently would place the app anywhere.
func decodeLocation(lc *object, c *mec.PlacementConstraints) {
	if cc := lc.str("countryCode", false, 8); cc != "" {
		if len(cc) != 2 || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' {
			lc.rp.add(lc.at("countryCode"), "must be an ISO 3166 alpha-2 code in capital letters")
		} else {
			c.CountryCode = cc
		}
	}
	if lc.has("civicAddressElement") {
		lc.rp.add(lc.at("civicAddressElement"), "not supported: constrain by countryCode or area")
	}
	if raw := lc.raw("area"); raw != nil {
		c.Area = decodePolygon(lc.rp, lc.at("area"), raw)
	}
	if !lc.has("countryCode") && !lc.has("area") && !lc.has("civicAddressElement") {
		lc.rp.add(lc.at("countryCode"), "required when area is absent")
	}
	lc.unknown()
}

// decodePolygon reads a GeoJSON Polygon (RFC 7946 §3.1.6). The v3 file types
// Polygon as a string, the spec text as the GeoJSON object: both are
// accepted, the string holding the object's JSON text.
func decodePolygon(rp *report, path string, raw json.RawMessage) [][][2]float64 {
	var text string
	if json.Unmarshal(raw, &text) == nil {
		raw = json.RawMessage(text)
		if !json.Valid(raw) {
			rp.add(path, "a string area must hold a GeoJSON Polygon object as JSON text")
			return nil
		}
	}
	g, _ := parseObject(rp, path, raw)
	if g == nil {
		return nil
	}
	if t := g.str("type", true, 32); t != "" && t != "Polygon" {
		rp.add(g.at("type"), `must be "Polygon"`)
	}
	g.raw("bbox") // allowed by RFC 7946 §5; the filter computes its own
	coords := g.raw("coordinates")
	g.unknown()
	if coords == nil {
		rp.add(g.at("coordinates"), "required")
		return nil
	}
	var rings [][][]float64
	if err := json.Unmarshal(coords, &rings); err != nil {
		rp.add(g.at("coordinates"), "must be an array of linear rings of [longitude, latitude] positions")
		return nil
	}
	return checkRings(rp, g.at("coordinates"), rings)
}

func checkRings(rp *report, path string, rings [][][]float64) [][][2]float64 {
	if len(rings) == 0 {
		rp.add(path, "must have an outer ring")
		return nil
	}
	if len(rings) > maxAreaRings {
		rp.add(path, "more than %d rings", maxAreaRings)
		return nil
	}
	total, ok := 0, true
	out := make([][][2]float64, len(rings))
	for i, ring := range rings {
		rpath := index(path, i)
		total += len(ring)
		if total > maxAreaPositions {
			rp.add(rpath, "the polygon has more than %d positions", maxAreaPositions)
			return nil
		}
		if len(ring) < 4 {
			rp.add(rpath, "a linear ring needs at least four positions")
			ok = false
		}
		out[i] = make([][2]float64, len(ring))
		for j, pos := range ring {
			ppath := index(rpath, j)
			if len(pos) < 2 || len(pos) > 3 {
				rp.add(ppath, "a position is [longitude, latitude] or [longitude, latitude, altitude]")
				ok = false
				continue
			}
			if pos[0] < -180 || pos[0] > 180 {
				rp.add(ppath, "longitude must be between -180 and 180")
				ok = false
			}
			if pos[1] < -90 || pos[1] > 90 {
				rp.add(ppath, "latitude must be between -90 and 90")
				ok = false
			}
			out[i][j] = [2]float64{pos[0], pos[1]}
		}
		if len(ring) < 4 {
			continue
		}
		first, last := ring[0], ring[len(ring)-1]
		if len(first) >= 2 && len(last) >= 2 && (first[0] != last[0] || first[1] != last[1]) {
			rp.add(rpath, "a linear ring must end at its first position")
			ok = false
		}
	}
	if !ok {
		return nil
	}
	return out
}

// decodePlacementExt reads x-mecorch-placement (see README.md): placement
// constraints ETSI has no attribute for.
func decodePlacementExt(ext *object, c *mec.PlacementConstraints) {
	c.SiteIDs = idList(ext, "siteIds")
	c.Zones = idList(ext, "zones")
	c.Cells = idList(ext, "cells")
	if lo := ext.obj("hostLabels"); lo != nil {
		if len(lo.members) > maxListLen {
			ext.rp.add(lo.path, "more than %d labels", maxListLen)
		} else {
			c.HostLabels = map[string]string{}
			for k := range lo.members {
				if k == "" {
					ext.rp.add(lo.path, "a label name must not be empty")
					lo.known[k] = true
					continue
				}
				// An empty value asks only that the label be present.
				if lo.has(k) {
					c.HostLabels[k] = lo.str(k, false, maxNameLen)
				}
			}
		}
	}
	c.SpreadKey = ext.str("spreadKey", false, maxNameLen)
	ext.unknown()
}

// idList reads an array of non-empty strings.
func idList(o *object, name string) []string {
	items := o.array(name)
	if len(items) > maxListLen {
		o.rp.add(o.at(name), "more than %d entries", maxListLen)
		return nil
	}
	var out []string
	for i, item := range items {
		var s string
		if err := json.Unmarshal(item, &s); err != nil || strings.TrimSpace(s) == "" || len(s) > maxIDLen {
			o.rp.add(index(o.at(name), i), "must be a non-empty string of at most %d bytes", maxIDLen)
			continue
		}
		out = append(out, s)
	}
	return out
}

// operateInput is a decoded OperateAppRequest.
type operateInput struct {
	ChangeStateTo string
	GraceSeconds  int
	Params        json.RawMessage
}

// decodeOperate reads an OperateAppRequest and applies the notes of 6.2.2.8:
// stopType and gracefulStopTimeout only with STOPPED; a timeout only, and
// always, with GRACEFUL; no stopType means FORCEFUL.
func decodeOperate(body []byte) (operateInput, error) {
	var rp report
	var in operateInput
	o, _ := parseBody(&rp, body)
	if o == nil {
		if len(rp.bad) == 0 {
			rp.add("changeStateTo", "required")
		}
		return in, rp.err("OperateAppRequest")
	}
	in.Params = compact(body)
	in.ChangeStateTo = o.oneOf("changeStateTo", true, mec.OpStarted, mec.OpStopped)
	stopType := o.oneOf("stopType", false, "FORCEFUL", "GRACEFUL")
	hasType, hasTimeout := o.has("stopType"), o.has("gracefulStopTimeout")
	timeout, timeoutOK := o.integer("gracefulStopTimeout", 0, maxTimeoutSeconds)
	switch in.ChangeStateTo {
	case mec.OpStarted:
		if hasType {
			rp.add("stopType", "must be absent when changeStateTo is STARTED")
		}
		if hasTimeout {
			rp.add("gracefulStopTimeout", "must be absent when changeStateTo is STARTED")
		}
	case mec.OpStopped:
		switch {
		case stopType == "GRACEFUL" && !hasTimeout:
			rp.add("gracefulStopTimeout", "required when stopType is GRACEFUL")
		case stopType == "GRACEFUL" && timeoutOK:
			in.GraceSeconds = int(timeout)
		case hasTimeout && (stopType == "FORCEFUL" || !hasType):
			rp.add("gracefulStopTimeout", "must be absent when stopType is FORCEFUL (or absent, which means FORCEFUL)")
		}
	}
	o.unknown()
	return in, rp.err("OperateAppRequest")
}

// terminateInput is a decoded TerminateAppRequest.
type terminateInput struct {
	GraceSeconds int
	Params       json.RawMessage
}

// decodeTerminate reads a TerminateAppRequest: gracefulTerminationTimeout
// only applies to GRACEFUL; a GRACEFUL one without it waits for ever.
func decodeTerminate(body []byte) (terminateInput, error) {
	var rp report
	var in terminateInput
	o, _ := parseBody(&rp, body)
	if o == nil {
		if len(rp.bad) == 0 {
			rp.add("terminationType", "required")
		}
		return in, rp.err("TerminateAppRequest")
	}
	in.Params = compact(body)
	kind := o.oneOf("terminationType", true, "FORCEFUL", "GRACEFUL")
	timeout, ok := o.integer("gracefulTerminationTimeout", 0, maxTimeoutSeconds)
	switch {
	case kind == "FORCEFUL" && o.has("gracefulTerminationTimeout"):
		rp.add("gracefulTerminationTimeout", "only applies when terminationType is GRACEFUL")
	case kind == "GRACEFUL" && ok:
		in.GraceSeconds = int(timeout)
	case kind == "GRACEFUL" && !o.has("gracefulTerminationTimeout"):
		in.GraceSeconds = waitForever
	}
	o.unknown()
	return in, rp.err("TerminateAppRequest")
}

// decodeCancel reads the optional CancelMode body. The v3 file names the
// member "CancelMode", the ETSI style would be "cancelMode": both are
// accepted, with the values GRACEFUL and FORCEFUL (and FORCED, the
// description's spelling). Both modes roll the operation back at once:
// mecorch has no long-running resource operations to let finish.
func decodeCancel(body []byte) (string, error) {
	var rp report
	o, _ := parseBody(&rp, body)
	if o == nil {
		return "", rp.err("CancelMode")
	}
	modes := []string{"GRACEFUL", "FORCEFUL", "FORCED"}
	mode := o.oneOf("cancelMode", false, modes...)
	if m := o.oneOf("CancelMode", false, modes...); m != "" {
		mode = m
	}
	o.unknown()
	return mode, rp.err("CancelMode")
}

// compact is body without insignificant whitespace, kept as the
// operation's operationParams.
func compact(body []byte) json.RawMessage {
	var b bytes.Buffer
	if err := json.Compact(&b, body); err != nil {
		return nil
	}
	return b.Bytes()
}

package agentproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// direction says who may send typ: a peer refuses (CodeUnexpected) a type
// that may not travel towards it.
func direction(typ string) (fromAgent, fromOrchestrator, known bool) {
	switch typ {
	case TypeHello, TypeStatus, TypeHeartbeat, TypeLogs, TypePaths, TypeRTT:
		return true, false, true
	case TypeWelcome, TypeDesired, TypeLogsRequest, TypeProbePlan:
		return false, true, true
	case TypeError:
		return true, true, true
	}
	return false, false, false
}

// KnownType reports whether typ is a message type of this version.
func KnownType(typ string) bool {
	_, _, known := direction(typ)
	return known
}

// FromAgent reports whether an agent may send typ.
func FromAgent(typ string) bool {
	a, _, _ := direction(typ)
	return a
}

// FromOrchestrator reports whether mecorch may send typ.
func FromOrchestrator(typ string) bool {
	_, o, _ := direction(typ)
	return o
}

// NewFrame builds a frame of this version with body encoded as JSON.
func NewFrame(typ string, seq, replyTo uint64, body any) (Frame, error) {
	if !KnownType(typ) {
		return Frame{}, protoErr(CodeUnexpected, "unknown message type %q", typ)
	}
	f := Frame{V: Version, Type: typ, Seq: seq, ReplyTo: replyTo}
	if body != nil {
		b, err := marshal(body)
		if err != nil {
			return Frame{}, fmt.Errorf("encode %s body: %w", typ, err)
		}
		if len(b) > MaxFrameBytes {
			return Frame{}, protoErr(CodeTooLarge, "%s body is %d bytes; a frame holds at most %d", typ, len(b), MaxFrameBytes)
		}
		f.Body = normalizeBody(b)
	}
	return f, nil
}

// Encode builds a frame and returns its wire form.
func Encode(typ string, seq, replyTo uint64, body any) ([]byte, error) {
	f, err := NewFrame(typ, seq, replyTo, body)
	if err != nil {
		return nil, err
	}
	return Marshal(f)
}

// Marshal returns the wire form of f. It refuses what Decode would refuse
// on the other end (another version, an unknown type, over MaxFrameBytes),
// so that a sender learns of its own mistake instead of losing the session.
func Marshal(f Frame) ([]byte, error) {
	if f.V != Version {
		return nil, protoErr(CodeBadVersion, "frame version %d; this build speaks %d", f.V, Version)
	}
	if !KnownType(f.Type) {
		return nil, protoErr(CodeUnexpected, "unknown message type %q", f.Type)
	}
	b, err := marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode %s frame: %w", f.Type, err)
	}
	if len(b) > MaxFrameBytes {
		return nil, protoErr(CodeTooLarge, "%s frame is %d bytes; at most %d", f.Type, len(b), MaxFrameBytes)
	}
	return b, nil
}

// Decode parses one frame. Every refusal is a *ProtocolError whose Code the
// transport sends back in an Error frame: tooLarge, badFrame (not one JSON
// object, trailing data, unknown fields, no type), badVersion, unexpected
// (a type this version does not know). The body is kept raw, compacted;
// DecodeBody reads it.
func Decode(data []byte) (Frame, error) {
	if len(data) > MaxFrameBytes {
		return Frame{}, protoErr(CodeTooLarge, "frame is %d bytes; at most %d", len(data), MaxFrameBytes)
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Frame{}, protoErr(CodeBadFrame, "a frame is one JSON object")
	}
	// The version is read first and leniently: a frame of another version
	// may have fields this one does not know, and must be told badVersion,
	// not badFrame. json.Unmarshal also refuses trailing data.
	var probe struct {
		V json.RawMessage `json:"v"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return Frame{}, protoErr(CodeBadFrame, "malformed JSON: %s", jsonReason(err))
	}
	var v int
	if len(probe.V) == 0 || json.Unmarshal(probe.V, &v) != nil {
		return Frame{}, protoErr(CodeBadVersion, "v must be the protocol version %d", Version)
	}
	if v != Version {
		return Frame{}, protoErr(CodeBadVersion, "version %d; this peer speaks %d", v, Version)
	}
	var f Frame
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return Frame{}, protoErr(CodeBadFrame, "%s", jsonReason(err))
	}
	if f.Type == "" {
		return Frame{}, protoErr(CodeBadFrame, "type is missing")
	}
	if !KnownType(f.Type) {
		return Frame{}, protoErr(CodeUnexpected, "unknown message type %q", truncate(f.Type, 64))
	}
	f.Body = normalizeBody(f.Body)
	return f, nil
}

// marshal is json.Marshal without HTML escaping (frames are not HTML),
// so that a decoded body re-encodes to the same bytes.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// normalizeBody compacts a body and drops an absent or null one, so that a
// frame compares equal to itself after a round trip.
func normalizeBody(b json.RawMessage) json.RawMessage {
	if len(b) == 0 || string(bytes.TrimSpace(b)) == "null" {
		return nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b // not JSON: Marshal will say so
	}
	return buf.Bytes()
}

// jsonReason words a decoding error without echoing the peer's input at
// length.
func jsonReason(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%s at byte %d", se.Error(), se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "(top level)"
		}
		return fmt.Sprintf("%s: a JSON %s cannot be a %s", field, te.Value, te.Type)
	}
	return truncate(err.Error(), 200)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

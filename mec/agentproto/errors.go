package agentproto

import (
	"fmt"
	"strings"

	"github.com/mecorch/mecorch/mec"
)

// Error codes, carried in an Error frame's code and in ProtocolError.Code.
// The first five answer a frame that was refused; the others say why a
// peer ends a session that was well formed.
const (
	CodeBadFrame   = "badFrame"   // malformed JSON, unknown or missing fields, a body that fails validation, a binary websocket message
	CodeBadVersion = "badVersion" // the frame's v is not Version
	CodeTooLarge   = "tooLarge"   // the frame is over MaxFrameBytes
	CodeUnexpected = "unexpected" // a type this version does not know, or one the sender may not send (or not now)
	CodeForbidden  = "forbidden"  // authentication failed, or the credential is not for this host

	CodeRefused     = "refused"     // mecorch will not take the agent as it is (e.g. its host is registered at another site, or was deleted)
	CodeUnavailable = "unavailable" // mecorch failed for a reason of its own; retry with backoff
	CodeReplaced    = "replaced"    // a newer connection of the same host took over
	CodeShutdown    = "shutdown"    // the sender is stopping
)

// Path states.
const (
	PathActive   = "Active"
	PathInactive = "Inactive"
)

// ProtocolError is a frame refused by this end. A transport answers it with
// an Error frame of the same Code before closing, so that the peer learns
// why; Detail is safe to log and to send (it never quotes a token).
type ProtocolError struct {
	Code   string
	Detail string
	// Params lists each body field that failed validation, by its path in
	// the body (e.g. "instances[2].state").
	Params []mec.InvalidParam
}

func (e *ProtocolError) Error() string {
	return "agent protocol: " + e.Code + ": " + e.Detail
}

func protoErr(code, format string, args ...any) *ProtocolError {
	return &ProtocolError{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// invalid turns the collected field errors into one ProtocolError, or nil.
func invalid(typ string, params []mec.InvalidParam) error {
	if len(params) == 0 {
		return nil
	}
	parts := make([]string, len(params))
	for i, p := range params {
		parts[i] = p.Name + ": " + p.Reason
	}
	return &ProtocolError{Code: CodeBadFrame, Detail: typ + " body: " + strings.Join(parts, "; "), Params: params}
}

package agenthub

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/mecorch/mecorch/etsi-api/problem"
	"github.com/mecorch/mecorch/mec"
	"github.com/mecorch/mecorch/mec/agentproto"
)

// Bounds of an instance log request.
const (
	defaultLogBytes = 64 << 10
	maxLogBytes     = 1 << 19 // the answer must fit a frame with room to spare
	logsTimeout     = 5 * time.Second
)

// logs serves GET /api/v1/app_instances/{instanceId}/logs: the tail of the
// instance's stdout and stderr, fetched from its host's agent over the
// channel (the agent may sit behind NAT; mecorch never dials it).
func (h *Hub) logs(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("instanceId")
	n := defaultLogBytes
	if q := r.URL.Query().Get("maxBytes"); q != "" {
		v, err := strconv.Atoi(q)
		if err != nil || v < 1 || v > maxLogBytes {
			problem.WriteError(w, r, mec.Errorf(http.StatusBadRequest,
				[]mec.InvalidParam{{Name: "maxBytes", Reason: "must be an integer from 1 to " + strconv.Itoa(maxLogBytes)}},
				"invalid maxBytes %q", q))
			return
		}
		n = v
	}
	in, err := h.lc.Get(r.Context(), id)
	if err != nil {
		problem.WriteError(w, r, err)
		return
	}
	if in.HostID == "" {
		problem.WriteError(w, r, mec.Errorf(http.StatusConflict, nil, "app instance %s is not placed on any host", id))
		return
	}
	s := h.session(in.HostID)
	if s == nil {
		problem.WriteError(w, r, mec.Errorf(http.StatusServiceUnavailable, nil, "the agent of host %s is not connected", in.HostID))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), logsTimeout)
	defer cancel()
	l, err := s.requestLogs(ctx, id, n)
	if err != nil {
		problem.WriteError(w, r, mec.Errorf(http.StatusGatewayTimeout, nil, "the agent of host %s did not answer: %v", in.HostID, err))
		return
	}
	if l.Error != "" {
		problem.WriteError(w, r, mec.Errorf(http.StatusNotFound, nil, "host %s: %s", in.HostID, l.Error))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if l.Truncated {
		w.Header().Set("X-Mecorch-Log-Truncated", "true")
	}
	_, _ = w.Write([]byte(l.Data))
}

func (s *session) requestLogs(ctx context.Context, id string, n int) (agentproto.Logs, error) {
	seq := s.nextSeq()
	ch := make(chan agentproto.Logs, 1)
	s.mu.Lock()
	s.pending[seq] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, seq)
		s.mu.Unlock()
	}()
	f, err := agentproto.NewFrame(agentproto.TypeLogsRequest, seq, 0, agentproto.LogsRequest{InstanceID: id, MaxBytes: n})
	if err != nil {
		return agentproto.Logs{}, err
	}
	if err := s.conn.Send(ctx, f); err != nil {
		return agentproto.Logs{}, err
	}
	select {
	case l := <-ch:
		return l, nil
	case <-ctx.Done():
		return agentproto.Logs{}, ctx.Err()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

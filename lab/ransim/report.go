package ransim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// CellChange is a UE's move from one cell to another, as mecorch's
// operator API takes it (POST /api/v1/ue_cell_changes).
type CellChange struct {
	UEID     string    `json:"ueId"`
	FromCell string    `json:"fromCell,omitempty"`
	ToCell   string    `json:"toCell"`
	Time     time.Time `json:"time"`
}

// CellChangeReporter tells the orchestrator that a UE changed cells.
type CellChangeReporter interface {
	ReportCellChange(ctx context.Context, c CellChange) error
}

// CellChangeReporterFunc adapts a function to CellChangeReporter.
type CellChangeReporterFunc func(ctx context.Context, c CellChange) error

// ReportCellChange calls f.
func (f CellChangeReporterFunc) ReportCellChange(ctx context.Context, c CellChange) error {
	return f(ctx, c)
}

// CellChangesPath is the operator API path cell changes are posted to.
const CellChangesPath = "/api/v1/ue_cell_changes"

// HTTPReporter posts cell changes to mecorch with a bearer token. A
// transport error or a 5xx or 429 answer is retried (Attempts in all,
// Backoff apart, growing); any other non-2xx answer is final.
type HTTPReporter struct {
	endpoint string
	token    string
	client   *http.Client
	Attempts int
	Backoff  time.Duration
}

// NewHTTPReporter reports to the mecorch at baseURL (http(s)://host:port).
// A nil client gets one with a 5-second timeout.
func NewHTTPReporter(baseURL, token string, client *http.Client) (*HTTPReporter, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("mecorch URL %q: want http(s)://host[:port]", baseURL)
	}
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &HTTPReporter{
		endpoint: strings.TrimRight(baseURL, "/") + CellChangesPath,
		token:    token, client: client, Attempts: 3, Backoff: 200 * time.Millisecond,
	}, nil
}

// ReportCellChange posts c.
func (r *HTTPReporter) ReportCellChange(ctx context.Context, c CellChange) error {
	body, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("cell change: %w", err)
	}
	var last error
	for i := range max(r.Attempts, 1) {
		if i > 0 {
			select {
			case <-ctx.Done():
				return fmt.Errorf("report cell change of %s: %w (last: %w)", c.UEID, ctx.Err(), last)
			case <-time.After(r.Backoff * time.Duration(i)):
			}
		}
		retry, err := r.post(ctx, body)
		if err == nil {
			return nil
		}
		last = err
		if !retry {
			break
		}
	}
	return fmt.Errorf("report cell change of %s to %s: %w", c.UEID, r.endpoint, last)
}

func (r *HTTPReporter) post(ctx context.Context, body []byte) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, application/problem+json")
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	retry = resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests
	return retry, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
}

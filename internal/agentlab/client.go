package agentlab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Client calls mecorch's API from inside the lab's core namespace.
type Client struct {
	base  string
	token string
	hc    *http.Client
}

func newClient(ns string, base, token string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialIn(ctx, ns, network, addr)
		},
		DisableKeepAlives: true,
	}
	return &Client{base: base, token: token, hc: &http.Client{Transport: tr, Timeout: 20 * time.Second}}
}

// Do sends body (JSON unless []byte) and decodes the answer into out; a
// status other than want is an error carrying the answer.
func (c *Client) Do(ctx context.Context, method, path string, body, out any, want int) error {
	_, err := c.Raw(ctx, method, path, "application/json", body, out, want)
	return err
}

// Raw is Do with a content type and the answer's headers.
func (c *Client) Raw(ctx context.Context, method, path, ctype string, body, out any, want int) (http.Header, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if rd != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != want {
		return resp.Header, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	if out != nil {
		if s, ok := out.(*string); ok {
			*s = string(data)
			return resp.Header, nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return resp.Header, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return resp.Header, nil
}

// WaitHealthy waits for /healthz.
func (c *Client) WaitHealthy(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		err := c.Do(ctx, "GET", "/healthz", nil, nil, 200)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("mecorch not healthy after %s: %w", limit, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

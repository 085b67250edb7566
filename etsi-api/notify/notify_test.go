package notify

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// hangGuard is how long a test waits for something that should happen at
// once before calling it a hang. It detects deadlocks; it measures nothing.
const hangGuard = 10 * time.Second

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// subscriber is a real callback server answering each POST with the next
// status of its script (the last one repeats).
type subscriber struct {
	*httptest.Server
	mu       sync.Mutex
	script   []int
	headers  []http.Header // optional, per answer
	hits     int
	bodies   []string
	ctypes   []string
	released chan struct{} // when non-nil, every request waits for it
}

func newSubscriber(t *testing.T, script ...int) *subscriber {
	s := &subscriber{script: script}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *subscriber) serve(w http.ResponseWriter, r *http.Request) {
	if s.released != nil {
		select {
		case <-s.released:
		case <-r.Context().Done():
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	i := min(s.hits, len(s.script)-1)
	s.hits++
	s.bodies = append(s.bodies, string(body))
	s.ctypes = append(s.ctypes, r.Header.Get("Content-Type"))
	var h http.Header
	if i < len(s.headers) {
		h = s.headers[i]
	}
	status := s.script[i]
	s.mu.Unlock()
	for k, v := range h {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
}

func (s *subscriber) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

// start runs a Sender until the test ends.
func start(t *testing.T, cfg Config, log *slog.Logger, opts ...Option) (*Sender, context.CancelFunc, <-chan error) {
	t.Helper()
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := New(cfg, nil, log, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx)
		close(done) // a test that consumed the result must not hang the cleanup
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return s, cancel, done
}

// eventually waits for cond, failing the test on a hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func fast() Config {
	return Config{Workers: 2, QueueSize: 16, MaxAttempts: 3, BaseDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond}
}

func TestDelivers(t *testing.T) {
	sub := newSubscriber(t, http.StatusNoContent)
	s, _, _ := start(t, fast(), nil)
	if !s.Enqueue(sub.URL+"/cb", []byte(`{"notificationType":"AppPackageOnBoarded"}`)) {
		t.Fatal("Enqueue refused")
	}
	eventually(t, "delivery", func() bool { return s.Stats().Delivered == 1 })
	if sub.bodies[0] != `{"notificationType":"AppPackageOnBoarded"}` || sub.ctypes[0] != "application/json" {
		t.Errorf("subscriber got %q as %q", sub.bodies[0], sub.ctypes[0])
	}
	if st := s.Stats(); st.Retries != 0 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestRetriesThenDelivers(t *testing.T) {
	sub := newSubscriber(t, http.StatusServiceUnavailable, http.StatusServiceUnavailable, http.StatusNoContent)
	s, _, _ := start(t, fast(), nil)
	s.Enqueue(sub.URL, []byte(`{}`))
	eventually(t, "delivery", func() bool { return s.Stats().Delivered == 1 })
	if st := s.Stats(); st.Retries != 2 || sub.count() != 3 || st.Failed != 0 {
		t.Errorf("stats %+v after %d POSTs, want 2 retries and 3 POSTs", st, sub.count())
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	sub := newSubscriber(t, http.StatusInternalServerError)
	s, _, _ := start(t, fast(), nil)
	s.Enqueue(sub.URL, []byte(`{}`))
	eventually(t, "giving up", func() bool { return s.Stats().Failed == 1 })
	if st := s.Stats(); st.Retries != 2 || sub.count() != 3 || st.Delivered != 0 {
		t.Errorf("stats %+v after %d POSTs, want 3 POSTs", st, sub.count())
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusNotFound, http.StatusGone} {
		sub := newSubscriber(t, status, http.StatusNoContent)
		s, _, _ := start(t, fast(), nil)
		s.Enqueue(sub.URL, []byte(`{}`))
		eventually(t, "failure", func() bool { return s.Stats().Failed == 1 })
		if st := s.Stats(); st.Retries != 0 || sub.count() != 1 {
			t.Errorf("%d: stats %+v after %d POSTs, want no retry", status, st, sub.count())
		}
	}
}

func TestTimeoutAndRateLimitAreRetried(t *testing.T) {
	for _, status := range []int{http.StatusRequestTimeout, http.StatusTooManyRequests} {
		sub := newSubscriber(t, status, http.StatusNoContent)
		s, _, _ := start(t, fast(), nil)
		s.Enqueue(sub.URL, []byte(`{}`))
		eventually(t, "delivery", func() bool { return s.Stats().Delivered == 1 })
		if sub.count() != 2 {
			t.Errorf("%d: %d POSTs, want 2", status, sub.count())
		}
	}
}

func TestNetworkErrorsAreRetried(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	url := gone.URL
	gone.Close() // nothing listens there any more
	s, _, _ := start(t, fast(), nil)
	s.Enqueue(url+"/cb?token=abc", []byte(`{}`))
	eventually(t, "giving up", func() bool { return s.Stats().Failed == 1 })
	if st := s.Stats(); st.Retries != 2 {
		t.Errorf("stats %+v, want 2 retries", st)
	}
}

// recordSleep returns a Sleep that records the delays asked for and does
// not wait them.
func recordSleep() (func(context.Context, time.Duration) error, func() []time.Duration) {
	var mu sync.Mutex
	var delays []time.Duration
	return func(ctx context.Context, d time.Duration) error {
			mu.Lock()
			defer mu.Unlock()
			delays = append(delays, d)
			return ctx.Err()
		}, func() []time.Duration {
			mu.Lock()
			defer mu.Unlock()
			return append([]time.Duration(nil), delays...)
		}
}

func TestBackoffAndRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	sub := newSubscriber(t, 429, 503, 503, 503, 500, 500, 204)
	sub.headers = []http.Header{
		{"Retry-After": {"7"}}, // seconds
		{"Retry-After": {now.Add(20 * time.Second).Format(http.TimeFormat)}}, // HTTP-date
		{"Retry-After": {"3600"}}, // capped at MaxDelay
		{"Retry-After": {"soon"}}, // ignored: backoff
	}
	sleepFn, delays := recordSleep()
	cfg := Config{Workers: 1, MaxAttempts: 10, BaseDelay: time.Second, MaxDelay: time.Minute}
	s, _, _ := start(t, cfg, nil, WithSleep(sleepFn), WithClock(func() time.Time { return now }))
	s.Enqueue(sub.URL, []byte(`{}`))
	eventually(t, "delivery", func() bool { return s.Stats().Delivered == 1 })

	got := delays()
	if len(got) != 6 {
		t.Fatalf("delays %v, want 6", got)
	}
	want := []time.Duration{7 * time.Second, 20 * time.Second, time.Minute}
	for i, w := range want {
		if got[i] != w {
			t.Errorf("delay %d = %v, want %v (Retry-After)", i, got[i], w)
		}
	}
	// Attempts 4, 5 and 6 back off exponentially from BaseDelay, with
	// equal jitter: between half and all of 8s, 16s, 32s.
	for i, full := range []time.Duration{8 * time.Second, 16 * time.Second, 32 * time.Second} {
		if d := got[3+i]; d < full/2 || d > full {
			t.Errorf("backoff after attempt %d = %v, want within [%v, %v]", 4+i, d, full/2, full)
		}
	}
}

func TestQueueFullRefusesAtOnce(t *testing.T) {
	s := New(Config{QueueSize: 2}, nil, slog.New(slog.NewTextHandler(io.Discard, nil))) // not running: nothing drains
	if !s.Enqueue("http://127.0.0.1:9/a", []byte(`1`)) || !s.Enqueue("http://127.0.0.1:9/b", []byte(`2`)) {
		t.Fatal("Enqueue refused below capacity")
	}
	if s.Enqueue("http://127.0.0.1:9/c", []byte(`3`)) {
		t.Fatal("Enqueue accepted beyond capacity")
	}
	if st := s.Stats(); st.Dropped != 1 || st.Queued != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestEnqueueNeverBlocksOnAHangingSubscriber(t *testing.T) {
	sub := newSubscriber(t, http.StatusNoContent)
	sub.released = make(chan struct{})
	defer close(sub.released)
	s, _, _ := start(t, Config{Workers: 1, QueueSize: 4, AttemptTimeout: time.Hour}, nil)

	finished := make(chan [2]int, 1)
	go func() {
		var accepted, refused int
		for range 200 {
			if s.Enqueue(sub.URL, []byte(`{}`)) {
				accepted++
			} else {
				refused++
			}
		}
		finished <- [2]int{accepted, refused}
	}()
	select {
	case n := <-finished:
		// One in the hanging worker's hands at most, four queued.
		if n[0] > 5 || n[1] < 195 {
			t.Errorf("accepted %d, refused %d", n[0], n[1])
		}
	case <-time.After(hangGuard):
		t.Fatal("Enqueue blocked while the subscriber hangs")
	}
	if sub.count() != 0 {
		t.Errorf("the hanging subscriber answered")
	}
}

func TestRunStopsOnCancelAndAbandons(t *testing.T) {
	sub := newSubscriber(t, http.StatusNoContent)
	sub.released = make(chan struct{})
	defer close(sub.released)
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	s, cancel, done := start(t, Config{Workers: 1, QueueSize: 8, AttemptTimeout: time.Hour}, log)
	for range 3 {
		s.Enqueue(sub.URL+"/cb?token=secret-in-query", []byte(`{}`))
	}
	eventually(t, "the first POST to hang", func() bool { return len(s.queue) == 2 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Run did not return after cancel")
	}
	if st := s.Stats(); st.Abandoned != 3 || st.Delivered != 0 || st.Queued != 0 {
		t.Errorf("stats %+v, want 3 abandoned", st)
	}
	if !strings.Contains(logs.String(), "undelivered") {
		t.Errorf("abandonment not logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), "secret-in-query") {
		t.Errorf("log holds the callback's query:\n%s", logs.String())
	}
	if s.Enqueue(sub.URL, []byte(`{}`)) {
		t.Error("Enqueue accepted after Run stopped")
	}
	if err := s.Run(context.Background()); err == nil {
		t.Error("second Run did not fail")
	}
}

func TestRunDrainsWithinDrainTimeout(t *testing.T) {
	sub := newSubscriber(t, http.StatusNoContent)
	s := New(Config{Workers: 1, QueueSize: 8, DrainTimeout: hangGuard}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for range 5 {
		s.Enqueue(sub.URL, []byte(`{}`))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stopped before it starts: only the drain delivers
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Delivered != 5 || st.Abandoned != 0 {
		t.Errorf("stats %+v, want all 5 delivered while draining", st)
	}
}

func TestCollectors(t *testing.T) {
	sub := newSubscriber(t, http.StatusBadRequest)
	s, _, _ := start(t, fast(), nil)
	reg := prometheus.NewRegistry()
	if err := s.Register(reg); err != nil {
		t.Fatal(err)
	}
	s.Enqueue(sub.URL, []byte(`{}`))
	eventually(t, "failure", func() bool { return s.Stats().Failed == 1 })
	n, err := testutil.GatherAndCount(reg)
	if err != nil || n != 6 {
		t.Fatalf("%d metrics (%v), want 6", n, err)
	}
	err = testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP mecorch_notify_failed_total Notifications refused by the subscriber or given up after the last retry.
# TYPE mecorch_notify_failed_total counter
mecorch_notify_failed_total 1
`), "mecorch_notify_failed_total")
	if err != nil {
		t.Error(err)
	}
	if err := s.Register(reg); err == nil {
		t.Error("registering twice succeeded")
	}
}

func TestMalformedCallbackFailsWithoutRetry(t *testing.T) {
	s, _, _ := start(t, fast(), nil)
	s.Enqueue("http://[::1", []byte(`{}`))
	eventually(t, "failure", func() bool { return s.Stats().Failed == 1 })
	if st := s.Stats(); st.Retries != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestDefaultConfig(t *testing.T) {
	d := DefaultConfig()
	if d.Workers <= 0 || d.QueueSize <= 0 || d.MaxAttempts <= 0 || d.BaseDelay <= 0 || d.MaxDelay < d.BaseDelay || d.AttemptTimeout <= 0 {
		t.Errorf("DefaultConfig %+v", d)
	}
	if New(Config{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil))).cfg != d {
		t.Error("the zero Config does not stand for DefaultConfig")
	}
}

func TestValidateCallbackURI(t *testing.T) {
	tests := []struct {
		uri string
		ok  bool
	}{
		{"http://127.0.0.1:8080/cb", true},
		{"https://subscriber.example/notify?token=x", true},
		{"http://10.0.0.5/cb", true},
		{"", false},
		{"ftp://example.com/x", false},
		{"file:///etc/passwd", false},
		{"javascript:alert(1)", false},
		{"/relative/path", false},
		{"http:///nohost", false},
		{"http://", false},
		{"http://host/with space", false},
		{"http://host/\nheader", false},
		{"mailto:someone@example.com", false},
		{"https://" + strings.Repeat("a", 3000) + ".example/", false},
	}
	for _, tt := range tests {
		err := ValidateCallbackURI(tt.uri)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateCallbackURI(%.40q) = %v, want ok=%v", tt.uri, err, tt.ok)
		}
	}
}

func TestRetryAfterParsing(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := map[string]time.Duration{
		"":     0,
		"0":    0,
		"-5":   0,
		"12":   12 * time.Second,
		"junk": 0,
		now.Add(-time.Minute).Format(http.TimeFormat):     0, // in the past
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
	}
	for v, want := range tests {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

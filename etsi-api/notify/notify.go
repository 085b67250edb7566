// Package notify delivers ETSI subscription notifications (POSTs of a JSON
// body to a subscriber's callbackUri) without ever holding up the request
// that caused them.
//
// Enqueue puts a notification on a bounded queue and returns at once; when
// the queue is full it refuses and counts a drop rather than wait. Run's
// workers POST each notification, retrying network errors, 5xx, 408 and 429
// with exponential backoff and jitter (and Retry-After on 429/503), and give
// up on other 4xx answers, which retrying would not change.
//
// Ordering: notifications to one callback are not guaranteed to arrive in
// the order they were enqueued. Several workers deliver in parallel and a
// retried notification is overtaken by later ones; ETSI notifications carry
// a timeStamp for subscribers to order them.
package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config tunes a Sender. Zero fields take the defaults noted.
type Config struct {
	Workers        int           // concurrent deliveries (4)
	QueueSize      int           // notifications waiting for a worker (1024)
	MaxAttempts    int           // tries per notification, the first included (5)
	BaseDelay      time.Duration // wait before the first retry, doubled after each (1s)
	MaxDelay       time.Duration // cap of a backoff and of Retry-After (1m)
	AttemptTimeout time.Duration // limit of one POST, answer included (10s)
	// DrainTimeout is how long, once Run's context is done, workers go on
	// delivering what is queued or in flight; the rest is abandoned (0:
	// abandon at once).
	DrainTimeout time.Duration
}

// DefaultConfig is the configuration the zero Config stands for.
func DefaultConfig() Config { return Config{}.withDefaults() }

// Option injects what tests replace. Config stays plain values, so that
// callers can compare it and read it from flags.
type Option func(*Sender)

// WithSleep replaces the wait between retries (a timer by default): sleep
// waits d or until ctx is done. Tests pass a recorder to check delays
// without waiting them.
func WithSleep(sleep func(ctx context.Context, d time.Duration) error) Option {
	return func(s *Sender) { s.sleep = sleep }
}

// WithClock replaces time.Now, which an HTTP-date Retry-After is read
// against.
func WithClock(now func() time.Time) Option {
	return func(s *Sender) { s.now = now }
}

func (c Config) withDefaults() Config {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	if c.QueueSize <= 0 {
		c.QueueSize = 1024
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.BaseDelay <= 0 {
		c.BaseDelay = time.Second
	}
	if c.MaxDelay <= 0 {
		c.MaxDelay = time.Minute
	}
	if c.MaxDelay < c.BaseDelay {
		c.MaxDelay = c.BaseDelay
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 10 * time.Second
	}
	if c.DrainTimeout < 0 {
		c.DrainTimeout = 0
	}
	return c
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// errBadRequest marks a notification that cannot even be sent (a malformed
// callback URI): retrying would not help.
var errBadRequest = errors.New("cannot build the request")

type job struct {
	uri  string
	body []byte
}

// Sender queues and delivers notifications.
type Sender struct {
	cfg    Config
	client *http.Client
	log    *slog.Logger
	queue  chan job
	sleep  func(ctx context.Context, d time.Duration) error
	now    func() time.Time

	mu      sync.RWMutex // guards closed against Enqueue
	closed  bool
	started atomic.Bool

	delivered, failed, dropped, retries, abandoned atomic.Uint64
}

// New returns a Sender that posts with client (http.DefaultClient if nil:
// the per-attempt timeout comes from the request context, not the client).
func New(cfg Config, client *http.Client, log *slog.Logger, opts ...Option) *Sender {
	cfg = cfg.withDefaults()
	if client == nil {
		client = http.DefaultClient
	}
	s := &Sender{cfg: cfg, client: client, log: log, queue: make(chan job, cfg.QueueSize), sleep: sleep, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Enqueue queues body for delivery to callbackURI and reports whether it
// was accepted. It never blocks: a full queue, or a Sender whose Run has
// stopped, refuses and counts a drop. body must not be modified afterwards.
func (s *Sender) Enqueue(callbackURI string, body []byte) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.dropped.Add(1)
		return false
	}
	select {
	case s.queue <- job{uri: callbackURI, body: body}:
		return true
	default:
		s.dropped.Add(1)
		s.log.Debug("notification dropped: queue full", "callback", SafeURI(callbackURI), "queue", cap(s.queue))
		return false
	}
}

// Run delivers queued notifications until ctx is done, then stops taking
// new ones, lets the workers finish for up to DrainTimeout, and logs what
// it abandoned. It returns nil after a shutdown through ctx, and an error
// if called twice.
func (s *Sender) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("notify: Run called twice")
	}
	// Deliveries outlive ctx by DrainTimeout, so they get their own context.
	workCtx, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range s.cfg.Workers {
		wg.Go(func() { s.work(workCtx, stop) })
	}

	<-ctx.Done()
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	close(stop)

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	if s.cfg.DrainTimeout > 0 {
		t := time.NewTimer(s.cfg.DrainTimeout)
		select {
		case <-done:
		case <-t.C:
		}
		t.Stop()
	}
	cancelWork()
	<-done

	var left uint64
	for {
		select {
		case <-s.queue:
			left++
			continue
		default:
		}
		break
	}
	s.abandoned.Add(left)
	if n := s.abandoned.Load(); n > 0 {
		s.log.Warn("notification sender stopped with undelivered notifications", "abandoned_total", n, "queued_abandoned", left)
	}
	return nil
}

func (s *Sender) work(ctx context.Context, stop <-chan struct{}) {
	for {
		select {
		case j := <-s.queue:
			s.deliver(ctx, j)
		case <-stop:
			// Draining: empty the queue unless the drain time is up.
			for ctx.Err() == nil {
				select {
				case j := <-s.queue:
					s.deliver(ctx, j)
				default:
					return
				}
			}
			return
		}
	}
}

// deliver tries j until it succeeds, fails for good, or ctx ends.
func (s *Sender) deliver(ctx context.Context, j job) {
	for attempt := 1; ; attempt++ {
		status, retryAfter, err := s.post(ctx, j)
		if ctx.Err() != nil {
			s.abandoned.Add(1)
			s.log.Debug("notification abandoned at shutdown", "callback", SafeURI(j.uri), "attempt", attempt)
			return
		}
		switch {
		case err == nil && status >= 200 && status < 300:
			s.delivered.Add(1)
			return
		case err == nil && !retryable(status):
			s.failed.Add(1)
			s.log.Warn("notification refused by subscriber", "callback", SafeURI(j.uri), "status", status)
			return
		case errors.Is(err, errBadRequest):
			s.failed.Add(1)
			s.log.Warn("notification not sent", "callback", SafeURI(j.uri), "err", errString(err))
			return
		case attempt >= s.cfg.MaxAttempts:
			s.failed.Add(1)
			s.log.Warn("notification given up", "callback", SafeURI(j.uri), "attempts", attempt, "status", status, "err", errString(err))
			return
		}
		delay := s.backoff(attempt)
		if retryAfter > 0 && (status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable) {
			delay = min(retryAfter, s.cfg.MaxDelay)
		}
		s.retries.Add(1)
		s.log.Debug("notification retry", "callback", SafeURI(j.uri), "attempt", attempt, "status", status, "err", errString(err), "delay", delay)
		if err := s.sleep(ctx, delay); err != nil {
			s.abandoned.Add(1)
			return
		}
	}
}

// retryable reports whether a non-2xx answer may change on a retry: server
// trouble and rate limiting may pass, other client errors will not.
func retryable(status int) bool {
	return status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests
}

// backoff is the wait after the attempt-th try: BaseDelay doubled per try,
// capped at MaxDelay, with "equal jitter" (half fixed, half random) so that
// subscribers that failed together do not retry in lockstep.
func (s *Sender) backoff(attempt int) time.Duration {
	d := s.cfg.MaxDelay
	if shift := attempt - 1; shift < 62 {
		if b := s.cfg.BaseDelay << shift; b > 0 && b < d {
			d = b
		}
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

// post makes one attempt and returns the status and any Retry-After.
func (s *Sender) post(ctx context.Context, j job) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AttemptTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.uri, bytes.NewReader(j.body))
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "mecorch-notify")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	// Read a little of the answer so the connection can be reused; a
	// subscriber has nothing to tell us in a body.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, retryAfter(resp.Header.Get("Retry-After"), s.now()), nil
}

// retryAfter reads a Retry-After value: delay-seconds or an HTTP-date
// (RFC 9110 10.2.3). Anything else is ignored.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// SafeURI is what logs show of a callback: no credentials, no query (a
// subscriber may put a token in either).
func SafeURI(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URI)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// errString describes err without the request URL net/http puts in a
// *url.Error, which may carry a subscriber's token in its query.
func errString(err error) string {
	if err == nil {
		return ""
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + ue.Err.Error()
	}
	return err.Error()
}

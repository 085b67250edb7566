package notify

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats are the Sender's counters since New.
type Stats struct {
	Delivered uint64 // answered 2xx
	Failed    uint64 // refused (4xx) or given up after MaxAttempts
	Dropped   uint64 // refused by Enqueue: queue full or Sender stopped
	Retries   uint64 // attempts after the first
	Abandoned uint64 // queued or in flight when Run stopped
	Queued    int    // waiting now
}

// Stats returns the current counters.
func (s *Sender) Stats() Stats {
	return Stats{
		Delivered: s.delivered.Load(),
		Failed:    s.failed.Load(),
		Dropped:   s.dropped.Load(),
		Retries:   s.retries.Load(),
		Abandoned: s.abandoned.Load(),
		Queued:    len(s.queue),
	}
}

// Collectors exposes the counters as Prometheus metrics
// (mecorch_notify_*), read from the Sender at scrape time.
func (s *Sender) Collectors() []prometheus.Collector {
	counter := func(name, help string, read func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(read()) })
	}
	return []prometheus.Collector{
		counter("mecorch_notify_delivered_total", "Notifications the subscriber acknowledged with a 2xx.", s.delivered.Load),
		counter("mecorch_notify_failed_total", "Notifications refused by the subscriber or given up after the last retry.", s.failed.Load),
		counter("mecorch_notify_dropped_total", "Notifications refused because the queue was full or the sender stopped.", s.dropped.Load),
		counter("mecorch_notify_retries_total", "Delivery attempts after the first.", s.retries.Load),
		counter("mecorch_notify_abandoned_total", "Notifications still queued or in flight at shutdown.", s.abandoned.Load),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mecorch_notify_queue_length", Help: "Notifications waiting for a worker."},
			func() float64 { return float64(len(s.queue)) }),
	}
}

// Register registers Collectors with reg.
func (s *Sender) Register(reg prometheus.Registerer) error {
	for _, c := range s.Collectors() {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register notify metrics: %w", err)
		}
	}
	return nil
}

// maxCallbackURI bounds what a subscriber may make us store and dial.
const maxCallbackURI = 2048

// ValidateCallbackURI checks a subscription's callbackUri before it is
// accepted: an absolute http or https URI with a host. The API layer turns
// the error into an invalidParams entry for its own field name.
//
// Private and loopback addresses are allowed on purpose: subscribers of an
// edge orchestrator commonly sit on the operator's private network.
func ValidateCallbackURI(raw string) error {
	if raw == "" {
		return errors.New("callback URI is empty")
	}
	if len(raw) > maxCallbackURI {
		return fmt.Errorf("callback URI is longer than %d bytes", maxCallbackURI)
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return errors.New("callback URI contains spaces or control characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("callback URI does not parse: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("callback URI scheme %q is not http or https", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return errors.New("callback URI has no host")
	}
	if u.Opaque != "" {
		return errors.New("callback URI is not hierarchical (want scheme://host/path)")
	}
	return nil
}

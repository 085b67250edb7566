package httpmw

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultAPIs are the first path segments that name an API: the ETSI base
// paths (DESIGN.md), the operator API and the OAuth token endpoint.
func DefaultAPIs() []string {
	return []string{
		"app_pkgm", "app_lcm", "granting", "mec_app_support", "mec_service_mgmt",
		"location", "rni", "bwm", "mts", "dev_app", "amsi", "api", "oauth2",
	}
}

// OtherAPI is the api label of every path outside the known APIs.
const OtherAPI = "other"

// Metrics counts requests and times them, per API, method and status code.
// Labels are bounded: the api label is the first path segment when it is a
// known API and "other" otherwise; never the raw path, whose IDs would make
// a series per resource.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	apis     []string
	now      func() time.Time
}

// NewMetrics registers mecorch_http_requests_total and
// mecorch_http_request_duration_seconds with reg. clock times requests
// (time.Now if nil); apis names the known first path segments
// (DefaultAPIs if none).
func NewMetrics(reg prometheus.Registerer, clock func() time.Time, apis ...string) (*Metrics, error) {
	if clock == nil {
		clock = time.Now
	}
	if len(apis) == 0 {
		apis = DefaultAPIs()
	}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mecorch_http_requests_total",
			Help: "HTTP requests served, by API (first path segment), method and status code.",
		}, []string{"api", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "mecorch_http_request_duration_seconds",
			Help:    "Time to serve an HTTP request, by API and method.",
			Buckets: prometheus.DefBuckets,
		}, []string{"api", "method"}),
		apis: slices.Clone(apis),
		now:  clock,
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register http metrics: %w", err)
		}
	}
	return m, nil
}

// Wrap counts and times every request through next.
func (m *Metrics) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := m.now()
		sw := wrap(w)
		defer func() {
			// Deferred so a panicking handler is still counted (as the 500
			// Recover answers, when Recover is inside this middleware).
			api, method := m.API(r.URL.Path), methodLabel(r.Method)
			m.duration.WithLabelValues(api, method).Observe(m.now().Sub(start).Seconds())
			m.requests.WithLabelValues(api, method, strconv.Itoa(sw.Status())).Inc()
		}()
		next.ServeHTTP(sw, r)
	})
}

// API is the api label of path.
func (m *Metrics) API(path string) string {
	first, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if slices.Contains(m.apis, first) {
		return first
	}
	return OtherAPI
}

// methodLabel folds nonstandard methods into one label value: a client must
// not be able to mint series.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut,
		http.MethodPatch, http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

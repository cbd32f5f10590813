// Package http is tradeops' inbound HTTP port: it translates requests into
// app calls and app results (or classified errors) into responses. It holds
// no business rules.
package http

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tradeops/tradeops/app"
	"github.com/tradeops/tradeops/domain"
)

// Registrar adds one feature's routes to the router.
type Registrar func(r *mux.Router)

// Options configure the handler.
type Options struct {
	Version  string
	Health   HealthChecker
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// Ready reports whether the service finished starting (migrations
	// applied, start-up work done). Until then /healthz and every route but
	// /metrics answer 503.
	Ready func() bool
	// Classify turns an error no layer classified into a classified one,
	// or returns it unchanged: the composition root passes the database
	// adapter's, which marks an unreachable database KindUnavailable (503),
	// so that this port needs no knowledge of the driver's errors.
	Classify func(error) error
	// TrustProxyHeaders takes the client IP from X-Forwarded-For / X-Real-IP
	// when the connection comes from one of TrustedProxies (see clientip.go).
	TrustProxyHeaders bool
	// TrustedProxies are the proxies whose forwarding headers are believed;
	// nil means the private, loopback and link-local ranges.
	TrustedProxies []netip.Prefix
}

// NewHandler builds the API: common middleware, /healthz, /metrics and every
// feature's routes.
func NewHandler(opts Options, features ...Registrar) http.Handler {
	m := newHTTPMetrics(opts.Registry)
	return requestContext(opts, recoverer(validateInput(newRouter(opts, m, features), m.instrument)))
}

// newRouter routes /healthz, /metrics and every feature's routes.
func newRouter(opts Options, m *httpMetrics, features []Registrar) *mux.Router {
	r := mux.NewRouter()
	// instrument runs as router middleware, after matching, so it labels by
	// the matched route's template without matching a second time; the
	// unmatched handlers are wrapped by hand (mux skips middleware for them).
	r.Use(m.instrument)
	r.NotFoundHandler = m.instrument(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeErrorStatus(w, http.StatusNotFound, "not_found", "no such endpoint")
	}))
	r.MethodNotAllowedHandler = m.instrument(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeErrorStatus(w, http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this endpoint")
	}))
	r.Handle("/healthz", healthHandler(opts.Version, opts.Health, opts.Ready)).Methods(http.MethodGet)
	r.Handle("/metrics", promhttp.HandlerFor(opts.Registry, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	api := r.NewRoute().Subrouter()
	api.Use(readyGate(opts.Ready))
	for _, f := range features {
		f(api)
	}
	return r
}

// Route is one method and path template the API serves.
type Route struct {
	Method, Path string
}

// Routes lists every method and path template NewHandler serves with
// features, so that a test can check each one is described in the API's
// OpenAPI document. A route that takes any method is listed with Method "*".
func Routes(features ...Registrar) ([]Route, error) {
	var out []Route
	// The router is only walked: no handler runs, so the options and
	// metrics it holds may be empty.
	err := newRouter(Options{}, &httpMetrics{}, features).Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		path, err := route.GetPathTemplate()
		if err != nil {
			return nil // the feature subrouter's route, which has no path
		}
		methods, err := route.GetMethods()
		if err != nil {
			methods = []string{"*"}
		}
		for _, m := range methods {
			out = append(out, Route{Method: m, Path: path})
		}
		return nil
	})
	return out, err
}

// requestContext gives every request an id (X-Request-ID, taken from the
// caller when sane), a logger carrying it, the client IP, and the body limit.
func requestContext(opts Options, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !validRequestID(id) {
			id = uuid.NewString()
		}
		w.Header().Set("X-Request-ID", id)
		ctx := app.WithCaller(r.Context(), app.Caller{RequestID: id, ClientIP: clientIP(r, opts)})
		ctx = withLogger(ctx, opts.Logger.With("request_id", id))
		if opts.Classify != nil {
			ctx = context.WithValue(ctx, classifierKey{}, opts.Classify)
		}
		// A declared length over the limit is refused before anything reads
		// the body; MaxBytesReader catches chunked or lying bodies.
		if r.ContentLength > MaxBodyBytes {
			writeErrorStatus(w, http.StatusRequestEntityTooLarge, errTooLarge.Code, errTooLarge.Message)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c == '-' || c == '_' || c == '.' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
			return false
		}
	}
	return true
}

// errStarting answers API requests until the service is ready; the code is
// the one of any other outage, so clients handle one 503.
var errStarting = domain.Errorf(domain.KindUnavailable, "unavailable", "the service is starting; the database is not ready yet")

func readyGate(ready func() bool) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if ready != nil && !ready() {
				WriteError(w, r, errStarting)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				LoggerFrom(r.Context()).Error("panic serving request", "panic", v)
				writeErrorStatus(w, http.StatusInternalServerError, "internal", "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

type loggerKey struct{}

func withLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// LoggerFrom returns the request's logger (with its request id).
func LoggerFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

type httpMetrics struct {
	latency *prometheus.HistogramVec
}

func newHTTPMetrics(reg *prometheus.Registry) *httpMetrics {
	m := &httpMetrics{latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tradeops_http_request_duration_seconds",
		Help:    "HTTP request latency by route template, method and status.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"route", "method", "status"})}
	reg.MustRegister(m.latency)
	return m
}

// instrument records latency per route template (never the raw path, whose
// ids would explode the label space) and logs one line per request.
func (m *httpMetrics) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		route := "unmatched"
		if cr := mux.CurrentRoute(r); cr != nil {
			if t, err := cr.GetPathTemplate(); err == nil {
				route = t
			}
		}
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		d := time.Since(start)
		m.latency.WithLabelValues(route, r.Method, strconv.Itoa(rec.status)).Observe(d.Seconds())
		LoggerFrom(r.Context()).Info("request", "method", r.Method, "route", route, "status", rec.status, "duration_ms", float64(d.Microseconds())/1000)
	})
}

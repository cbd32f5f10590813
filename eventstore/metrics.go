package eventstore

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PrometheusObserver counts appends and their latency by outcome.
type PrometheusObserver struct {
	latency *prometheus.HistogramVec
	events  *prometheus.CounterVec
}

// NewPrometheusObserver registers the append metrics on reg.
func NewPrometheusObserver(reg prometheus.Registerer) *PrometheusObserver {
	o := &PrometheusObserver{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tradeops_eventstore_append_duration_seconds",
			Help:    "Latency of one append statement, by outcome (ok, conflict, error).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tradeops_eventstore_appended_events_total",
			Help: "Events appended, by outcome.",
		}, []string{"outcome"}),
	}
	reg.MustRegister(o.latency, o.events)
	return o
}

// ObserveAppend implements Observer.
func (o *PrometheusObserver) ObserveAppend(d time.Duration, n int, err error) {
	outcome := "ok"
	switch {
	case errors.Is(err, ErrConcurrency):
		outcome = "conflict"
	case err != nil:
		outcome = "error"
	}
	o.latency.WithLabelValues(outcome).Observe(d.Seconds())
	o.events.WithLabelValues(outcome).Add(float64(n))
}

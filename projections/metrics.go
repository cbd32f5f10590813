package projections

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	applied     *prometheus.CounterVec
	errors      *prometheus.CounterVec
	batch       *prometheus.HistogramVec
	lagEvents   *prometheus.GaugeVec
	lagSeconds  *prometheus.GaugeVec
	quarantined *prometheus.GaugeVec
	state       *prometheus.GaugeVec
}

// states are the values of Status.State; the state gauge has one series
// per state, 1 for the current one (Prometheus' enum convention), so a
// dashboard or the console sees "failing" or "stale", not only the lag.
var states = []string{"not started", "live", "catching up", "failing", "stale"}

// newMetrics builds the runner's metrics and registers them on reg (nil:
// kept unregistered, for runners nobody scrapes).
func newMetrics(reg prometheus.Registerer) *metrics {
	label := []string{"projection"}
	m := &metrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tradeops_projection_applied_events_total",
			Help: "Events applied to a read model by this process.",
		}, label),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tradeops_projection_errors_total",
			Help: "Batches that failed for a systemic reason (retried with backoff).",
		}, label),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tradeops_projection_batch_duration_seconds",
			Help:    "Time to apply one batch and commit it with the checkpoint.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
		}, label),
		lagEvents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tradeops_projection_lag_events",
			Help: "Events in the stream that the projection has not applied yet.",
		}, label),
		lagSeconds: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tradeops_projection_lag_seconds",
			Help: "Age of the oldest event the projection has not applied yet (0 when caught up).",
		}, label),
		quarantined: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tradeops_projection_quarantined_events",
			Help: "Poison events the projection skipped (see `tradeops projections status`).",
		}, label),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tradeops_projection_state",
			Help: "1 for the projection's current state (live, catching up, failing, stale, not started), 0 for the others.",
		}, []string{"projection", "state"}),
	}
	if reg != nil {
		reg.MustRegister(m.applied, m.errors, m.batch, m.lagEvents, m.lagSeconds, m.quarantined, m.state)
	}
	return m
}

// setState marks state as projection's current one.
func (m *metrics) setState(projection, state string) {
	for _, s := range states {
		v := 0.0
		if s == state {
			v = 1
		}
		m.state.WithLabelValues(projection, s).Set(v)
	}
}

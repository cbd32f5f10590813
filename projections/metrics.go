package projections

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	applied     *prometheus.CounterVec
	errors      *prometheus.CounterVec
	batch       *prometheus.HistogramVec
	lagEvents   *prometheus.GaugeVec
	lagSeconds  *prometheus.GaugeVec
	quarantined *prometheus.GaugeVec
}

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
	}
	if reg != nil {
		reg.MustRegister(m.applied, m.errors, m.batch, m.lagEvents, m.lagSeconds, m.quarantined)
	}
	return m
}

package export

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	published, duplicates, errors prometheus.Counter
	lagEvents, lagSeconds, active prometheus.Gauge
}

// newMetrics registers the relay's metrics on reg (unregistered when nil).
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "tradeops_export_published_events_total",
			Help: "Events the broker stored (acknowledged, not as duplicates)."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "tradeops_export_duplicate_events_total",
			Help: "Publishes the broker acknowledged as duplicates (an event it already held, dropped)."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "tradeops_export_errors_total",
			Help: "Export sessions that failed (broker or database unavailable, a publish refused); each is retried."}),
		lagEvents: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tradeops_export_lag_events",
			Help: "Events in the store after the export's checkpoint."}),
		lagSeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tradeops_export_lag_seconds",
			Help: "Age of the oldest event not yet exported (0 when caught up)."}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tradeops_export_active",
			Help: "1 while this process holds the export lock and publishes; 0 while it waits or retries."}),
	}
	if reg != nil {
		reg.MustRegister(m.published, m.duplicates, m.errors, m.lagEvents, m.lagSeconds, m.active)
	}
	return m
}

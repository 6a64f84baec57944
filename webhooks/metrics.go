package webhooks

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	deliveries *prometheus.CounterVec
	duration   *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "circlegate", Subsystem: "webhook", Name: "deliveries_total",
			Help: "Webhook requests by provider and outcome (applied, duplicate, no_route, bad_signature, ...).",
		}, []string{"provider", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "circlegate", Subsystem: "webhook", Name: "delivery_duration_seconds",
			Help:    "Time from receiving a webhook request to its answer (verify, queue, commit, log), by provider.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"provider"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.duration} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe counts one request. The provider comes from the route pattern, so the
// labels are bounded.
func (m *metrics) observe(p Provider, outcome string, d time.Duration) {
	if _, err := ParseProvider(string(p)); err != nil {
		p = "unknown"
	}
	m.deliveries.WithLabelValues(string(p), outcome).Inc()
	m.duration.WithLabelValues(string(p)).Observe(d.Seconds())
}

package ws

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	sessions    prometheus.Gauge
	streams     prometheus.Gauge
	connections prometheus.Counter
	refused     *prometheus.CounterVec
	disconnects *prometheus.CounterVec
	received    prometheus.Counter
	sent        prometheus.Counter
	writes      prometheus.Counter
	workers     prometheus.GaugeFunc
}

// newMetrics makes the hub's metrics; workers reads the number of serve workers.
func newMetrics(reg prometheus.Registerer, workers func() float64) (*metrics, error) {
	m := &metrics{
		workers: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "circlegate", Subsystem: "ws", Name: "serve_workers",
			Help: "Goroutines that run requests and stay for the next (at most sessions.serve_workers).",
		}, workers),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "circlegate", Subsystem: "ws", Name: "sessions",
			Help: "Open WebSocket sessions.",
		}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "circlegate", Subsystem: "sse", Name: "streams",
			Help: "Open SSE streams.",
		}),
		connections: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "circlegate", Subsystem: "ws", Name: "connections_total",
			Help: "WebSocket sessions accepted.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "circlegate", Subsystem: "ws", Name: "refused_total",
			Help: "WebSocket upgrades refused, by reason.",
		}, []string{"reason"}),
		disconnects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "circlegate", Subsystem: "ws", Name: "disconnects_total",
			Help: "WebSocket sessions closed, by reason.",
		}, []string{"reason"}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "circlegate", Subsystem: "ws", Name: "messages_received_total",
			Help: "WebSocket messages received.",
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "circlegate", Subsystem: "ws", Name: "messages_sent_total",
			Help: "WebSocket messages and SSE records sent.",
		}),
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "circlegate", Subsystem: "ws", Name: "writes_total",
			Help: "Batches written to WebSocket sessions and SSE streams (one system call each on plain TCP); messages_sent_total / writes_total is the batching factor.",
		}),
	}
	for _, d := range AllDisconnects {
		m.disconnects.WithLabelValues(d.Reason)
	}
	for _, r := range []string{"connection_limit", "tenant_connection_limit", "bad_token", "shutdown"} {
		m.refused.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.sessions, m.streams, m.connections, m.refused, m.disconnects, m.received, m.sent, m.writes, m.workers} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

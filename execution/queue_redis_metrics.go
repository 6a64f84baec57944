package execution

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// queueMetrics are the fleet queue's metrics: counters of what this process did, and
// gauges of the whole fleet's stream read from Redis at each scrape.
type queueMetrics struct {
	reclaimed     prometheus.Counter
	deadLettered  prometheus.Counter
	repliesMissed prometheus.Counter
	jobsLost      prometheus.Counter
	errors        *prometheus.CounterVec
	q             *RedisQueue
	streamLen     *prometheus.Desc
	pending       *prometheus.Desc
	deadLetters   *prometheus.Desc
	fleetReclaim  *prometheus.Desc
	fleetDead     *prometheus.Desc
}

func newQueueMetrics(reg prometheus.Registerer, q *RedisQueue) (*queueMetrics, error) {
	opts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: "circlegate", Subsystem: "queue", Name: name, Help: help}
	}
	m := &queueMetrics{
		reclaimed: prometheus.NewCounter(opts("reclaimed_total",
			"Jobs this process took over from a worker that stopped renewing them (visibility timeout).")),
		deadLettered: prometheus.NewCounter(opts("dead_lettered_total",
			"Jobs this process moved to the dead-letter stream after max_attempts deliveries.")),
		repliesMissed: prometheus.NewCounter(opts("replies_missed_total",
			"Job outcomes this gateway found by reading job records because their reply did not arrive.")),
		jobsLost: prometheus.NewCounter(opts("jobs_lost_total",
			"Jobs Redis took from this gateway and then no longer held (a restart without its latest writes, a failover); their callers got -32006.")),
		errors: prometheus.NewCounterVec(opts("redis_errors_total",
			"Failed Redis operations of the queue, by operation (submit, read, ack, renew, reclaim, sweep, dead-letter)."), []string{"op"}),
		q: q,
		streamLen: prometheus.NewDesc("circlegate_queue_stream_length",
			"Jobs in the fleet's stream: waiting or running (acknowledged jobs are deleted from it).", nil, nil),
		pending: prometheus.NewDesc("circlegate_queue_pending",
			"Jobs delivered to a worker and not yet acknowledged, in the whole fleet.", nil, nil),
		deadLetters: prometheus.NewDesc("circlegate_queue_dead_letters",
			"Jobs in the dead-letter stream.", nil, nil),
		fleetReclaim: prometheus.NewDesc("circlegate_queue_fleet_reclaimed_total",
			"Jobs any worker of the fleet took over from a worker that stopped renewing them.", nil, nil),
		fleetDead: prometheus.NewDesc("circlegate_queue_fleet_dead_lettered_total",
			"Jobs any worker of the fleet moved to the dead-letter stream.", nil, nil),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.reclaimed, m.deadLettered, m.repliesMissed, m.jobsLost, m.errors, m} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Describe implements prometheus.Collector for the gauges read from Redis.
func (m *queueMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.streamLen
	ch <- m.pending
	ch <- m.deadLetters
	ch <- m.fleetReclaim
	ch <- m.fleetDead
}

// Collect reads the stream's length, its pending entries, the dead letters and the
// fleet's totals (one pipeline, bounded by a second); when Redis does not answer, they
// are left out.
func (m *queueMetrics) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	k := m.q.keys
	pipe := m.q.rdb.Pipeline()
	length := pipe.XLen(ctx, k.stream)
	pending := pipe.XPending(ctx, k.stream, k.group)
	dead := pipe.XLen(ctx, k.dead)
	stats := pipe.HMGet(ctx, k.stats, "reclaimed", "dead_lettered")
	if _, err := pipe.Exec(ctx); err != nil && length.Err() != nil {
		return
	}
	ch <- prometheus.MustNewConstMetric(m.streamLen, prometheus.GaugeValue, float64(length.Val()))
	if pending.Err() == nil {
		ch <- prometheus.MustNewConstMetric(m.pending, prometheus.GaugeValue, float64(pending.Val().Count))
	}
	if dead.Err() == nil {
		ch <- prometheus.MustNewConstMetric(m.deadLetters, prometheus.GaugeValue, float64(dead.Val()))
	}
	if stats.Err() == nil {
		for i, d := range []*prometheus.Desc{m.fleetReclaim, m.fleetDead} {
			n, _ := strconv.ParseFloat(fmt.Sprint(stats.Val()[i]), 64)
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, n)
		}
	}
}

package execution

import (
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	jobs         *prometheus.CounterVec
	jobDuration  *prometheus.HistogramVec
	staleRetries prometheus.Counter
	roundJobs    prometheus.Histogram
	executeTime  prometheus.Histogram
	commitTime   prometheus.Histogram
	snapshots    *prometheus.CounterVec

	mutateOK       prometheus.Counter  // jobs{kind="mutate",outcome="ok"}
	mutateDuration prometheus.Observer // job_duration_seconds{kind="mutate"}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "circlegate", Subsystem: "execution", Name: "jobs_total",
			Help: "Jobs submitted, by kind and outcome (ok or the error kind).",
		}, []string{"kind", "outcome"}),
		jobDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "circlegate", Subsystem: "execution", Name: "job_duration_seconds",
			Help:    "Time from submitting a job to its commit, by kind.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"kind"}),
		staleRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "circlegate", Subsystem: "execution", Name: "stale_retries_total",
			Help: "Jobs re-executed because their context changed before they committed.",
		}),
		roundJobs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "circlegate", Subsystem: "execution", Name: "round_jobs",
			Help:    "Jobs committed together in one round (one storage sync).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		executeTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "circlegate", Subsystem: "execution", Name: "round_execute_seconds",
			Help:    "Time to execute the jobs of one round, before their commit.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "circlegate", Subsystem: "execution", Name: "round_commit_seconds",
			Help:    "Time to commit the jobs of one round durably (one storage sync).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "circlegate", Subsystem: "execution", Name: "snapshot_contexts_total",
			Help: "Contexts a fleet round or query read with their head at once, by state: whole (read along), " +
				"by_key (too large: read key by key) or failed (not found, or Redis did not answer).",
		}, []string{"state"}),
	}
	m.mutateOK = m.jobs.WithLabelValues(string(JobMutate), "ok")
	m.mutateDuration = m.jobDuration.WithLabelValues(string(JobMutate))
	if reg != nil {
		for _, c := range []prometheus.Collector{m.jobs, m.jobDuration, m.staleRetries, m.roundJobs, m.executeTime, m.commitTime, m.snapshots} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) observeJob(kind JobKind, err error, d time.Duration) {
	if kind == JobMutate { // the usual kind, with its series looked up once
		m.mutateDuration.Observe(d.Seconds())
		if err == nil {
			m.mutateOK.Inc()
			return
		}
	} else {
		m.jobDuration.WithLabelValues(string(kind)).Observe(d.Seconds())
	}
	outcome := "ok"
	if err != nil {
		outcome = errs.KindOf(err).String()
	}
	m.jobs.WithLabelValues(string(kind), outcome).Inc()
}

// observeSnapshot counts a context read by SnapshotReader.
func (m *metrics) observeSnapshot(s *store.Snapshot) {
	state := "whole"
	switch {
	case s.Err != nil:
		state = "failed"
	case !s.Full:
		state = "by_key"
	}
	m.snapshots.WithLabelValues(state).Inc()
}

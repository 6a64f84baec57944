package execution

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/circlegate/circlegate/errs"
)

// TestObserveJob: jobs land in the series of their kind and outcome, whether or
// not the series was looked up in advance.
func TestObserveJob(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	m.observeJob(JobMutate, nil, time.Millisecond)
	m.observeJob(JobMutate, nil, time.Millisecond)
	m.observeJob(JobMutate, errs.E(errs.Forbidden, "no"), time.Millisecond)
	m.observeJob(JobPlay, nil, time.Millisecond)
	for _, c := range []struct {
		kind, outcome string
		want          float64
	}{{"mutate", "ok", 2}, {"mutate", errs.Forbidden.String(), 1}, {"play", "ok", 1}} {
		if got := testutil.ToFloat64(m.jobs.WithLabelValues(c.kind, c.outcome)); got != c.want {
			t.Errorf("jobs{%s,%s} = %v, want %v", c.kind, c.outcome, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.jobDuration); n != 2 {
		t.Errorf("%d job_duration series, want 2 (mutate, play)", n)
	}
}

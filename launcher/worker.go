package launcher

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/circlegate/circlegate/execution"
)

// Worker is a running `circlegate worker`: the job workers of a fleet node, with no
// gateway (no HTTP unless --metrics asks for /metrics).
type Worker struct {
	cfg      *Config
	log      *slog.Logger
	Metrics  *prometheus.Registry
	Service  *execution.Service
	backends *backends
	metrics  *http.Server
	cancel   context.CancelFunc
	done     chan struct{}
}

// StartWorker opens the fleet's backends from cfg (which must name a Redis) and runs
// cfg.Execution.Workers concurrent job batches until Shutdown.
func StartWorker(cfg *Config, metricsAddr string, log *slog.Logger) (*Worker, error) {
	if err := cfg.validateShared(); err != nil {
		return nil, err
	}
	if !cfg.Fleet() {
		return nil, errors.New("worker: a worker needs --redis (or redis.url): it serves a fleet")
	}
	if cfg.Execution.Workers < 0 {
		return nil, errors.New("worker: execution.workers is -1, so this worker would run nothing; set --concurrency")
	}
	w := &Worker{cfg: cfg, log: log, Metrics: prometheus.NewRegistry(), done: make(chan struct{})}
	w.Metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "circlegate"}))
	b, err := openBackends(context.Background(), cfg, log, w.Metrics)
	if err != nil {
		return nil, err
	}
	w.backends = b
	if w.Service, err = execution.NewService(cfg.Execution, b.Store, b.Engine, b.Queue, b.Bus, log, w.Metrics); err != nil {
		b.close(log)
		return nil, err
	}
	if metricsAddr != "" {
		ln, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			b.close(log)
			return nil, fmt.Errorf("metrics listen %s: %w", metricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(w.Metrics, promhttp.HandlerOpts{}))
		w.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = w.metrics.Serve(ln) }()
		log.Info("metrics", "addr", ln.Addr().String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go func() {
		defer close(w.done)
		if err := w.Service.RunWorkers(ctx); err != nil {
			log.Error("workers stopped", "err", err)
		}
	}()
	node := ""
	if q, ok := b.Queue.(*execution.RedisQueue); ok {
		node = q.Node()
	}
	log.Info("worker running", "node", node, "concurrency", w.Service.Config().Workers)
	return w, nil
}

// Shutdown stops taking jobs, lets the running batches finish and acknowledges them,
// hands the jobs it held but had not started back to the fleet (so another worker
// takes them at once), and closes the backends. It waits until ctx ends at most.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.cancel()
	var err error
	select {
	case <-w.done:
	case <-ctx.Done():
		err = errors.New("worker: shutdown timed out with batches running")
	}
	if w.metrics != nil {
		_ = w.metrics.Close()
	}
	w.backends.close(w.log)
	w.log.Info("stopped", "err", err)
	return err
}

func runWorker(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configFile := fs.String("config", "", "TOML config file: its [redis], [execution] and [store.history] apply")
	redisURL := fs.String("redis", "", "the fleet's Redis, redis://HOST:PORT/DB (or redis.url in the config)")
	concurrency := fs.Int("concurrency", 0, "concurrent job batches (default: execution.workers, else GOMAXPROCS)")
	data := fs.String("data", "", "data directory, for the compiled-module cache (default ./data)")
	metricsAddr := fs.String("metrics", "", "serve Prometheus /metrics on this address (default: no HTTP at all)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (default info)")
	check := fs.Bool("check-config", false, "validate the configuration and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg := &Config{}
	if *configFile != "" {
		var err error
		if cfg, err = LoadConfig(*configFile); err != nil {
			fmt.Fprintf(stderr, "circlegate: %v\n", err)
			return 2
		}
	}
	setIf(&cfg.Redis.URL, *redisURL)
	setIf(&cfg.Data, *data)
	setIf(&cfg.Log.Level, *logLevel)
	switch {
	case *concurrency < 0:
		fmt.Fprintf(stderr, "circlegate: --concurrency %d: must be 1 or more\n", *concurrency)
		return 2
	case *concurrency > 0:
		cfg.Execution.Workers = *concurrency
	}
	if err := cfg.validateShared(); err != nil {
		fmt.Fprintf(stderr, "circlegate: %v\n", err)
		return 2
	}
	if !cfg.Fleet() {
		fmt.Fprintln(stderr, "circlegate: worker needs --redis URL (or redis.url in --config)")
		return 2
	}
	if *check {
		fmt.Fprintln(stdout, "config ok")
		return 0
	}
	if err := os.MkdirAll(cfg.Data, 0o700); err != nil {
		fmt.Fprintf(stderr, "circlegate: data dir: %v\n", err)
		return 1
	}
	log := newLogger(cfg.Log, stderr)
	w, err := StartWorker(cfg, *metricsAddr, log)
	if err != nil {
		fmt.Fprintf(stderr, "circlegate: %v\n", err)
		return 1
	}
	<-ctx.Done()
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := w.Shutdown(sctx); err != nil {
		return 1
	}
	return 0
}

package execution

import (
	"sync"
	"time"
)

// goPool runs functions on long-lived goroutines. Executing a job needs a deep stack
// (the engine's calls into wazero and back to the host), and a fresh goroutine per job
// would grow its stack, by copying, on every job; a pooled goroutine keeps its grown
// stack. When no pooled goroutine is idle, a new one runs the function and then joins
// the pool, up to max; past max it exits when done. A pooled goroutine idle for
// poolIdle exits, so an idle process holds none.
type goPool struct {
	work chan func()
	mu   sync.Mutex
	n    int
	max  int
}

// poolIdle is how long a pooled goroutine waits for work before it exits.
const poolIdle = 2 * time.Second

func newGoPool(max int) *goPool { return &goPool{work: make(chan func()), max: max} }

// Go runs f on an idle pooled goroutine, or on a new one, and marks wg done after.
func (p *goPool) Go(wg *sync.WaitGroup, f func()) {
	wg.Add(1)
	job := func() {
		defer wg.Done()
		f()
	}
	select {
	case p.work <- job:
		return
	default:
	}
	p.mu.Lock()
	join := p.n < p.max
	if join {
		p.n++
	}
	p.mu.Unlock()
	go func() {
		job()
		if join {
			p.serve()
		}
	}()
}

// serve runs pooled work until it has been idle for poolIdle.
func (p *goPool) serve() {
	idle := time.NewTimer(poolIdle)
	defer idle.Stop()
	for {
		select {
		case next := <-p.work:
			next()
			idle.Reset(poolIdle)
		case <-idle.C:
			p.mu.Lock()
			p.n--
			p.mu.Unlock()
			return
		}
	}
}

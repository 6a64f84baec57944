package execution

import "sync"

// goPool runs functions on long-lived goroutines. Executing a job needs a deep stack
// (the engine's calls into wazero and back to the host), and a fresh goroutine per job
// would grow its stack, by copying, on every job; a pooled goroutine keeps its grown
// stack. When no pooled goroutine is idle, a new one runs the function and then joins
// the pool, up to max; past max it exits when done.
type goPool struct {
	work chan func()
	mu   sync.Mutex
	n    int
	max  int
}

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
			for next := range p.work {
				next()
			}
		}
	}()
}

package store

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/internal/redisx"
)

// headBatchMax is the most head reads one pipeline carries.
const headBatchMax = 256

// headReads batches the head reads of concurrent callers (a gateway checks the
// caller's role on a context before each call it queues): the reads waiting when the
// previous pipeline returns go out together in the next one, so that many callers
// share one write and one read on the connection instead of a round trip each.
type headReads struct {
	reqs chan *headReq
	stop chan struct{}
	done chan struct{}
}

type headReq struct {
	id   string
	vals []any
	err  error
	done chan struct{}
}

func (r *Redis) startHeadReads() {
	r.heads = &headReads{reqs: make(chan *headReq, 4096), stop: make(chan struct{}), done: make(chan struct{})}
	go r.headLoop()
}

func (r *Redis) stopHeadReads() {
	close(r.heads.stop)
	<-r.heads.done
}

// readHeadVals returns the head fields of context id (HMGET headFields), through the
// batch of the moment. It returns when ctx ends or the store closes, whatever the
// pipeline is doing.
func (r *Redis) readHeadVals(ctx context.Context, id string) ([]any, error) {
	req := &headReq{id: id, done: make(chan struct{})}
	select {
	case r.heads.reqs <- req:
	default: // thousands waiting already: read on our own
		vals, err := r.rdb.HMGet(ctx, r.ctxKeys(id).head, headFields...).Result()
		return vals, redisx.Err(err, "read head")
	}
	select {
	case <-req.done:
		return req.vals, req.err
	case <-ctx.Done():
		return nil, redisx.Err(ctx.Err(), "read head")
	case <-r.heads.done: // closed, perhaps before req was read
		return nil, errClosed
	}
}

func (r *Redis) headLoop() {
	defer close(r.heads.done)
	batch := make([]*headReq, 0, headBatchMax)
	for {
		select {
		case <-r.heads.stop: // first: after Close no read goes out
			return
		default:
		}
		select {
		case req := <-r.heads.reqs:
			batch = append(batch[:0], req)
		case <-r.heads.stop:
			return
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case req := <-r.heads.reqs:
				batch = append(batch, req)
			default:
				break drain
			}
		}
		r.readHeads(batch)
	}
}

// readHeads reads a batch's heads with one pipeline and hands each its answer. The
// pipeline has its own deadline: its callers have theirs, and stop waiting at them.
func (r *Redis) readHeads(batch []*headReq) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(batch))
	for i, req := range batch {
		cmds[i] = pipe.HMGet(ctx, r.ctxKeys(req.id).head, headFields...)
	}
	_, _ = pipe.Exec(ctx)
	for i, req := range batch {
		req.vals, req.err = cmds[i].Result()
		req.err = redisx.Err(req.err, "read head")
		close(req.done)
	}
}

package main

// The fleet floor: with a [redis] url in its config, rpcfloor runs mutate the way any
// fleet of Go processes on Redis Streams must at least run it, so that cgbench's
// fleet-mutate can be run on it (`rpcfloor serve` as the gateway, `rpcfloor worker`
// as each worker process) and show what this machine allows a fleet to reach.
//
// Per mutation it does the least the fleet's contract needs: the gateway queues the
// job durably (XADD, pipelined with the other jobs waiting), a worker reads it in a
// batch (XREADGROUP), and one script per batch commits every job's state change
// (HINCRBY), acknowledges the jobs (XACK, XDEL) and sends each accepting node its
// results (one PUBLISH per node); the gateway answers the client when its result
// arrives. Compared with the gateway, nothing is executed (no WASM), no state is read
// before the commit, and nothing of a tx log, an event history, job records or
// idempotency records is kept, unless RPCFLOOR_FLEET_KEEP, RPCFLOOR_FLEET_WORK and
// RPCFLOOR_FLEET_GUEST (fleet_guest.go) add their price back. query reads the counter
// with HGET.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

const (
	floorStream = "floor:jobs"
	floorGroup  = "workers"
	floorReply  = "floor:reply:"
	floorBatch  = 256 // jobs per XADD pipeline and per XREADGROUP
)

// floorCommit commits a batch of increments, acknowledges the jobs and publishes the
// results, one message per accepting node. Each commit also writes what keep says
// (RPCFLOOR_FLEET_KEEP): per group, count records of a kind and value.
// KEYS: 1 the job stream, then per job its counter. ARGV: 1 group, 2 reply channel
// prefix, 3 the number of keep groups G, then per group: kind, count, value, then per
// job: entry id, node, job id.
var floorCommit = redis.NewScript(`
local groups = tonumber(ARGV[3])
local first = 4 + 3 * groups
local ids, replies, nodes = {}, {}, {}
for j = 2, #KEYS do
  local a = first + (j - 2) * 3
  local v = redis.call('HINCRBY', KEYS[j], 'count', 1)
  ids[#ids + 1] = ARGV[a]
  local node = ARGV[a + 1]
  if not replies[node] then
    replies[node] = {}
    nodes[#nodes + 1] = node
  end
  local r = replies[node]
  r[#r + 1] = ARGV[a + 2] .. ' ' .. v
  for g = 0, groups - 1 do
    local kind, val = ARGV[4 + 3 * g], ARGV[6 + 3 * g]
    for x = 1, tonumber(ARGV[5 + 3 * g]) do
      local name = g .. '.' .. x
      if kind == 'key' then
        redis.call('SET', KEYS[j] .. ':k' .. name .. ':' .. ARGV[a + 2], val, 'PX', 600000)
      elseif kind == 'field' then
        redis.call('HSET', KEYS[j] .. ':f' .. name, v, val)
      elseif kind == 'entry' then
        redis.call('XADD', KEYS[j] .. ':e' .. name, 'MAXLEN', '=', 1000, '*', 'e', val)
      else
        redis.call('HSET', KEYS[j], 'o' .. name, val)
      end
    end
  end
end
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
redis.call('XDEL', KEYS[1], unpack(ids))
for _, node in ipairs(nodes) do
  redis.call('PUBLISH', ARGV[2] .. node, table.concat(replies[node], '\n'))
end
return #ids
`)

// drain appends to batch what ch holds now, up to max values in all.
func drain[T any](ch <-chan T, batch []T, max int) []T {
	for len(batch) < max {
		select {
		case v := <-ch:
			batch = append(batch, v)
		default:
			return batch
		}
	}
	return batch
}

// configValue reads key = "value" in section of a gateway config ("" is the top
// level); it returns "" when there is none.
func configValue(path, section, key string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	in := ""
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]") {
			in = strings.Trim(line, "[]")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok && in == section && strings.TrimSpace(k) == key {
			return strconv.Unquote(strings.TrimSpace(v))
		}
	}
	return "", nil
}

func redisClient(url string) (*redis.Client, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	opt.PoolSize = 32
	rdb := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = rdb.XGroupCreateMkStream(ctx, floorStream, floorGroup, "$").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		rdb.Close()
		return nil, err
	}
	return rdb, nil
}

func newNode() string { return randomHex(8) }

// fleetGateway queues mutations and hands their results back.
type fleetGateway struct {
	rdb    *redis.Client
	node   string
	submit chan *floorCall

	mu      sync.Mutex
	waiting map[string]*floorCall
	next    uint64
}

type floorCall struct {
	id, context string
	value       int64
	err         error
	done        chan struct{}
}

func startFleetGateway(url string) (*fleetGateway, error) {
	rdb, err := redisClient(url)
	if err != nil {
		return nil, err
	}
	g := &fleetGateway{rdb: rdb, node: newNode(), submit: make(chan *floorCall, 4096), waiting: map[string]*floorCall{}}
	sub := rdb.Subscribe(context.Background(), floorReply+g.node)
	if _, err := sub.Receive(context.Background()); err != nil {
		return nil, err
	}
	go g.receive(sub)
	go g.submitLoop()
	return g, nil
}

// mutate queues one increment of contextID and waits for its new value.
func (g *fleetGateway) mutate(contextID string) (int64, error) {
	g.mu.Lock()
	g.next++
	c := &floorCall{id: strconv.FormatUint(g.next, 36), context: contextID, done: make(chan struct{})}
	g.waiting[c.id] = c
	g.mu.Unlock()
	g.submit <- c
	select {
	case <-c.done:
		return c.value, c.err
	case <-time.After(10 * time.Second):
		g.mu.Lock()
		delete(g.waiting, c.id)
		g.mu.Unlock()
		return 0, errors.New("no result within 10 s")
	}
}

// submitLoop queues whatever calls are waiting in one pipeline of XADDs.
func (g *fleetGateway) submitLoop() {
	ctx := context.Background()
	batch := make([]*floorCall, 0, floorBatch)
	for c := range g.submit {
		batch = drain(g.submit, append(batch[:0], c), cap(batch))
		pipe := g.rdb.Pipeline()
		for _, c := range batch {
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: floorStream, Values: []string{"i", c.id, "n", g.node, "c", c.context}})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			for _, c := range batch {
				g.finish(c.id, 0, err)
			}
		}
	}
}

// receive hands the results published to this node to their calls.
func (g *fleetGateway) receive(sub *redis.PubSub) {
	for m := range sub.Channel(redis.WithChannelSize(4096)) {
		for line := range strings.Lines(m.Payload) {
			id, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
			n, err := strconv.ParseInt(v, 10, 64)
			g.finish(id, n, err)
		}
	}
}

func (g *fleetGateway) finish(id string, value int64, err error) {
	g.mu.Lock()
	c := g.waiting[id]
	delete(g.waiting, id)
	g.mu.Unlock()
	if c != nil {
		c.value, c.err = value, err
		close(c.done)
	}
}

// get reads a counter.
func (g *fleetGateway) get(contextID string) (int64, error) {
	v, err := g.rdb.HGet(context.Background(), counterKey(contextID), "count").Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

func counterKey(contextID string) string { return "floor:c:" + contextID }

// runWorker is `rpcfloor worker --config FILE [--concurrency N]`: N loops that each
// read a batch of jobs and commit it with one script.
func runWorker(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	conf := fs.String("config", "", "gateway config holding [redis] url")
	concurrency := fs.Int("concurrency", 2, "batches in flight")
	data := fs.String("data", "", "data dir (the compiled modules' cache, with RPCFLOOR_FLEET_GUEST)")
	_ = fs.String("log-level", "", "ignored")
	if err := fs.Parse(args); err != nil {
		return err
	}
	url, err := configValue(*conf, "redis", "url")
	if err != nil {
		return err
	}
	if url == "" {
		return fmt.Errorf("%s: no [redis] url", *conf)
	}
	rdb, err := redisClient(url)
	if err != nil {
		return err
	}
	node := newNode()
	fmt.Fprintf(os.Stderr, "msg=\"worker running\" node=%s\n", node) // what cgbench waits for
	var guest *floorGuest
	if fleetGuest {
		if guest, err = newFloorGuest(rdb, filepath.Join(*data, "rpcfloor-cache")); err != nil {
			return err
		}
	}
	errc := make(chan error, *concurrency)
	groups, spent := keep, work
	for range *concurrency {
		go func() { errc <- workLoop(rdb, node, groups, spent, guest) }()
	}
	return <-errc
}

func workLoop(rdb *redis.Client, node string, groups []keepGroup, spent time.Duration, guest *floorGuest) error {
	ctx := context.Background()
	keys := make([]string, 0, floorBatch+1)
	contexts := make([]string, 0, floorBatch)
	args := make([]any, 0, 2+3*floorBatch)
	for {
		res, err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: floorGroup, Consumer: node, Streams: []string{floorStream, ">"}, Count: floorBatch, Block: time.Second,
		}).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return err
		}
		keys = append(keys[:0], floorStream)
		args = append(args[:0], floorGroup, floorReply, len(groups))
		for _, g := range groups {
			args = append(args, g.kind, g.count, g.value)
		}
		contexts = contexts[:0]
		for _, s := range res {
			for _, m := range s.Messages {
				spin(spent)
				contexts = append(contexts, str(m.Values["c"]))
				keys = append(keys, counterKey(str(m.Values["c"])))
				args = append(args, m.ID, str(m.Values["n"]), str(m.Values["i"]))
			}
		}
		if len(keys) == 1 {
			continue
		}
		if guest != nil {
			if err := guest.run(ctx, contexts); err != nil {
				return err
			}
		}
		if err := floorCommit.Run(ctx, rdb, keys, args...).Err(); err != nil {
			return err
		}
	}
}

// keep is what each commit writes besides the counter (RPCFLOOR_FLEET_KEEP), and
// work how long a worker spins per job before it commits (RPCFLOOR_FLEET_WORK): the
// price, on this machine, of what a fleet keeps per mutation and of the work it
// does.
var (
	keep []keepGroup
	work time.Duration
)

// keepGroup is count records of value, written as kind:
//
//	key        a new key with a TTL (SET PX), as a job or idempotency record
//	field      a new field of the context's hash of that group (HSET), as a tx log entry
//	entry      a new entry of the context's stream of that group, capped at 1,000
//	           (XADD MAXLEN =), as an event history
//	overwrite  the same field of the counter's hash every time (HSET), as a head or a
//	           state update
type keepGroup struct {
	kind  string
	count int
	value string
}

// parseKeep reads RPCFLOOR_FLEET_KEEP: empty, or groups kind:count:bytes separated
// by commas, such as key:2:500,overwrite:6:8.
func parseKeep(v string) ([]keepGroup, error) {
	if v == "" {
		return nil, nil
	}
	var out []keepGroup
	for g := range strings.SplitSeq(v, ",") {
		parts := strings.Split(g, ":")
		if len(parts) != 3 {
			return nil, fmt.Errorf("RPCFLOOR_FLEET_KEEP: %q is not kind:count:bytes", g)
		}
		kind := parts[0]
		if kind != "key" && kind != "field" && kind != "entry" && kind != "overwrite" {
			return nil, fmt.Errorf("RPCFLOOR_FLEET_KEEP: kind %q is not key, field, entry or overwrite", kind)
		}
		n, err := strconv.Atoi(parts[1])
		if err != nil || n < 1 || n > 100 {
			return nil, fmt.Errorf("RPCFLOOR_FLEET_KEEP: count %q is not a number from 1 to 100", parts[1])
		}
		size, err := strconv.Atoi(parts[2])
		if err != nil || size < 1 || size > 1<<20 {
			return nil, fmt.Errorf("RPCFLOOR_FLEET_KEEP: bytes %q is not a number from 1 to 1048576", parts[2])
		}
		out = append(out, keepGroup{kind: kind, count: n, value: strings.Repeat("r", size)})
	}
	return out, nil
}

func str(v any) string { s, _ := v.(string); return s }

// Package events carries committed events from the node that committed them to the
// subscribers of their context on every node, in order, and resumes a subscriber from
// the store's per-context history.
//
// A Bus moves events between nodes: the memory bus within one process, the Redis bus
// across a fleet. Each node keeps its own subscribers in a Broker, which a Bus feeds.
// A Message is one event, encoded at most once per transport however many subscribers
// receive it. A Feed is one subscriber's view of one context: it replays history after
// a resume point, then passes live messages on in seq order with no gap and no
// duplicate, reading history again to fill any gap it sees.
package events

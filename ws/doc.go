// Package ws serves WebSocket sessions: one reader goroutine per connection, a bounded
// outbound queue drained by a writer goroutine that runs only while there is something
// to write, ping/pong with a pong deadline, a read limit, an authentication timeout,
// per-tenant and global connection limits, and a reason code for every close. A
// session or SSE stream ends when its token expires (4501) or, through CloseRevoked,
// is revoked (4502).
//
// Concurrency: a Hub is safe for concurrent use. A session's outbound queue (outbox.go)
// may be fed from any goroutine: replies, which are written at once by the goroutine
// that served the request, and event frames, which the flushers' sweeps write
// (flush.go). Frames are written by one goroutine at a time. gorilla/websocket only
// reads; the gateway encodes its own frames (frame.go), control frames included, and
// writes pings, pongs and close frames through the same outbox (writeNow).
package ws

// Package ws serves WebSocket sessions: a reader goroutine per connection while the
// client is active (an idle session parks in an epoll set with none, read.go), a
// bounded outbound queue drained by a writer goroutine that runs only while there is
// something to write, ping/pong with a pong deadline, a read limit, an
// authentication timeout, per-tenant and global connection limits, and a reason code
// for every close. A session or SSE stream ends when its token expires (4501) or,
// through CloseRevoked, is revoked (4502).
//
// Concurrency: a Hub is safe for concurrent use. A session's outbound queue (outbox.go)
// may be fed from any goroutine: replies, which are written at once by the goroutine
// that served the request, and event frames, which the flushers' sweeps write
// (flush.go). Frames are written by one goroutine at a time. gorilla/websocket only
// upgrades; the gateway decodes the client's frames (decode.go) and encodes its own
// (frame.go), control frames included, and writes pings, pongs and close frames
// through the same outbox (writeNow, closeWith).
package ws

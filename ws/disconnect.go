package ws

import "github.com/gorilla/websocket"

// Disconnect is why a session ended. Code is sent in the close frame, Reason is the
// close frame's text, the log field and the metric label. Codes 4000-4499 allow the
// client to reconnect; 4500-4999 are terminal (reconnecting as before will fail again).
type Disconnect struct {
	Code      int
	Reason    string
	Reconnect bool
}

// The reasons a session closes.
var (
	// DisconnectNormal: the client closed the connection.
	DisconnectNormal = Disconnect{websocket.CloseNormalClosure, "normal", true}
	// DisconnectConnectionLost: the connection broke without a close frame.
	DisconnectConnectionLost = Disconnect{websocket.CloseAbnormalClosure, "connection_lost", true}
	// DisconnectShutdown: the server is shutting down (1001 going away).
	DisconnectShutdown = Disconnect{websocket.CloseGoingAway, "shutdown", true}
	// DisconnectMessageTooBig: a message exceeded max_message_bytes.
	DisconnectMessageTooBig = Disconnect{websocket.CloseMessageTooBig, "message_too_big", true}
	// DisconnectProtocolError: the client broke the WebSocket protocol.
	DisconnectProtocolError = Disconnect{websocket.CloseProtocolError, "protocol_error", true}
	// DisconnectServerError: an unexpected server-side failure.
	DisconnectServerError = Disconnect{websocket.CloseInternalServerErr, "server_error", true}
	// DisconnectSlow: the outbound queue passed outbound_queue_bytes.
	DisconnectSlow = Disconnect{4001, "slow", true}
	// DisconnectNoPong: no frame arrived within ping_interval + pong_timeout.
	DisconnectNoPong = Disconnect{4002, "no_pong", true}
	// DisconnectAuthTimeout: the session did not authenticate within auth_timeout.
	DisconnectAuthTimeout = Disconnect{4003, "auth_timeout", true}
	// DisconnectWriteError: writing to the connection failed or timed out.
	DisconnectWriteError = Disconnect{4004, "write_error", true}
	// DisconnectTokenExpired: the session's token expired.
	DisconnectTokenExpired = Disconnect{4501, "token_expired", false}
	// DisconnectTokenRevoked: the session's token or key was revoked.
	DisconnectTokenRevoked = Disconnect{4502, "token_revoked", false}
	// DisconnectTenantRemoved: the tenant is no longer served here.
	DisconnectTenantRemoved = Disconnect{4503, "tenant_removed", false}
)

// AllDisconnects lists every reason, for metrics and documentation.
var AllDisconnects = []Disconnect{
	DisconnectNormal, DisconnectConnectionLost, DisconnectShutdown, DisconnectMessageTooBig,
	DisconnectProtocolError, DisconnectServerError, DisconnectSlow, DisconnectNoPong,
	DisconnectAuthTimeout, DisconnectWriteError, DisconnectTokenExpired,
	DisconnectTokenRevoked, DisconnectTenantRemoved,
}

package rpc

import (
	"bytes"
	"encoding/json"
)

// Request is one decoded JSON-RPC request or notification.
type Request struct {
	// ID is the raw id: nil for a notification, `null` for an explicit null id.
	ID     json.RawMessage
	Method string
	// Params is the raw params: nil when absent or null, else an object or an array.
	Params json.RawMessage
}

// IsNotification reports whether the request has no id and so gets no reply.
func (r *Request) IsNotification() bool { return r.ID == nil }

var nullID = json.RawMessage("null")

// DecodeRequest validates one JSON value as a request object. On failure it returns
// the error to send and the id to send it with (null when none could be read).
func DecodeRequest(raw []byte) (*Request, json.RawMessage, *Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, nullID, invalidRequest("request must be an object")
	}
	if !json.Valid(raw) {
		return nil, nullID, &Error{Code: CodeParseError, Message: "parse error"}
	}
	var version, method, id, params []byte
	_ = members(raw, func(k, v []byte) error {
		switch {
		case keyIs(k, "jsonrpc"):
			version = v
		case keyIs(k, "method"):
			method = v
		case keyIs(k, "id"):
			id = v
		case keyIs(k, "params"):
			params = v
		}
		return nil
	})
	if id != nil && !validID(id) {
		return nil, nullID, invalidRequest("id must be a string, a number or null")
	}
	replyID := json.RawMessage(id)
	if replyID == nil {
		replyID = nullID
	}
	for _, f := range []struct {
		name string
		v    []byte
	}{{"jsonrpc", version}, {"method", method}} {
		if f.v != nil && f.v[0] != '"' && string(f.v) != "null" {
			return nil, replyID, invalidRequest(f.name + " has the wrong type")
		}
	}
	if v, _ := unquote(version); v != "2.0" {
		return nil, replyID, invalidRequest(`jsonrpc must be "2.0"`)
	}
	m, _ := unquote(method)
	if m == "" {
		return nil, replyID, invalidRequest("method must be a non-empty string")
	}
	if len(params) > 0 && params[0] != '{' && params[0] != '[' {
		if string(params) != "null" {
			return nil, replyID, invalidRequest("params must be an object or an array")
		}
		params = nil
	}
	return &Request{ID: id, Method: m, Params: params}, replyID, nil
}

func validID(id json.RawMessage) bool {
	switch id[0] {
	case '"', 'n':
		return true
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return true
	}
	return false
}

func invalidRequest(msg string) *Error {
	return &Error{Code: CodeInvalidRequest, Message: "invalid request: " + msg}
}

// appendResult appends a success response to buf.
func appendResult(buf *bytes.Buffer, id json.RawMessage, result []byte) {
	buf.WriteString(`{"jsonrpc":"2.0","id":`)
	buf.Write(id)
	buf.WriteString(`,"result":`)
	buf.Write(result)
	buf.WriteByte('}')
}

// appendError appends an error response to buf.
func appendError(buf *bytes.Buffer, id json.RawMessage, e *Error) {
	body, err := json.Marshal(e)
	if err != nil {
		body = []byte(`{"code":-32603,"message":"internal error"}`)
	}
	buf.WriteString(`{"jsonrpc":"2.0","id":`)
	buf.Write(id)
	buf.WriteString(`,"error":`)
	buf.Write(body)
	buf.WriteByte('}')
}

package rpc

import (
	"context"
	"errors"

	"github.com/circlegate/circlegate/errs"
)

// JSON-RPC 2.0 codes and circlegate's own codes. openrpc.json lists the same set under
// components.errors; a test keeps the two in step.
const (
	CodeParseError         = -32700
	CodeInvalidRequest     = -32600
	CodeMethodNotFound     = -32601
	CodeInvalidParams      = -32602
	CodeInternal           = -32603
	CodeExecution          = -32000
	CodeUnauthenticated    = -32001
	CodeInvalidCredentials = -32002
	CodeForbidden          = -32003
	CodeNotFound           = -32004
	CodeRateLimited        = -32005
	CodeOverloaded         = -32006
	CodeConflict           = -32007
)

// WireErrors is the registry of every error code the gateway sends, with the name
// openrpc.json gives it, its generic message and its metric label.
var WireErrors = []struct {
	Name    string
	Code    int
	Message string
	Label   string
}{
	{"ParseError", CodeParseError, "parse error", "parse_error"},
	{"InvalidRequest", CodeInvalidRequest, "invalid request", "invalid_request"},
	{"MethodNotFound", CodeMethodNotFound, "method not found", "method_not_found"},
	{"InvalidParams", CodeInvalidParams, "invalid params", "invalid_params"},
	{"Internal", CodeInternal, "internal error", "internal"},
	{"Execution", CodeExecution, "execution error", "execution"},
	{"Unauthenticated", CodeUnauthenticated, "authentication required", "unauthenticated"},
	{"InvalidCredentials", CodeInvalidCredentials, "invalid credentials", "invalid_credentials"},
	{"Forbidden", CodeForbidden, "forbidden", "forbidden"},
	{"NotFound", CodeNotFound, "not found", "not_found"},
	{"RateLimited", CodeRateLimited, "rate limited", "rate_limited"},
	{"Overloaded", CodeOverloaded, "overloaded or timed out", "overloaded"},
	{"Conflict", CodeConflict, "conflict", "conflict"},
}

var codeLabels = func() map[int]string {
	m := make(map[int]string, len(WireErrors))
	for _, w := range WireErrors {
		m[w.Code] = w.Label
	}
	return m
}()

var kindCodes = map[errs.Kind]int{
	errs.Internal:           CodeInternal,
	errs.InvalidParams:      CodeInvalidParams,
	errs.Unauthenticated:    CodeUnauthenticated,
	errs.InvalidCredentials: CodeInvalidCredentials,
	errs.Forbidden:          CodeForbidden,
	errs.NotFound:           CodeNotFound,
	errs.RateLimited:        CodeRateLimited,
	errs.Overloaded:         CodeOverloaded,
	errs.Conflict:           CodeConflict,
	errs.Execution:          CodeExecution,
}

// Error is a JSON-RPC error object.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// ToWire maps any error to the error object a client sees. Errors with a kind keep
// their client-safe message; a deadline becomes -32006; everything else becomes -32603
// "internal error" with no text of its own.
func ToWire(err error) *Error {
	var we *Error
	if errors.As(err, &we) {
		return we
	}
	var e *errs.Error
	if errors.As(err, &e) && e.Kind != errs.Internal {
		out := &Error{Code: kindCodes[e.Kind], Message: e.Message}
		if e.Param != "" {
			out.Data = map[string]string{"param": e.Param}
		}
		return out
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: CodeOverloaded, Message: "deadline exceeded"}
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}

// Outcome returns the metric label of a call's result: "ok" for nil, else the label
// of its wire error.
func Outcome(err error) string {
	if err == nil {
		return "ok"
	}
	if l, ok := codeLabels[ToWire(err).Code]; ok {
		return l
	}
	return "internal"
}

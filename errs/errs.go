// Package errs holds the kinds of error that every service layer of circlegate returns
// and every transport maps to its wire form: JSON-RPC codes in rpc/errors.go, HTTP
// statuses in the admin API and the webhook handlers.
//
// It is a leaf: it imports nothing of circlegate, so any package may use it. An error
// of kind Internal, or any error that carries no kind, never shows its text on the wire.
package errs

import (
	"errors"
	"fmt"
	"strings"
)

// Kind classifies an error for the transports.
type Kind uint8

// The kinds of error. Each maps to one JSON-RPC code (see rpc/errors.go).
const (
	Internal           Kind = iota // anything unexpected; the text stays in the logs
	InvalidParams                  // a parameter is missing, of the wrong type or malformed
	Unauthenticated                // the method needs authentication first
	InvalidCredentials             // wrong signature, unknown, expired or reused nonce, bad token
	Forbidden                      // authenticated, but the role does not allow it
	NotFound                       // the tenant, app, context or record does not exist
	RateLimited                    // too many requests; try again later
	Overloaded                     // a queue or limit is full, or the deadline passed
	Conflict                       // the request conflicts with the current state
	Execution                      // the application failed: trap, panic, limit, bad output
)

var kindNames = [...]string{
	Internal:           "internal",
	InvalidParams:      "invalid_params",
	Unauthenticated:    "unauthenticated",
	InvalidCredentials: "invalid_credentials",
	Forbidden:          "forbidden",
	NotFound:           "not_found",
	RateLimited:        "rate_limited",
	Overloaded:         "overloaded",
	Conflict:           "conflict",
	Execution:          "execution",
}

// String returns the kind's snake_case name, used in logs and metric labels.
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "internal"
}

// ParseKind returns the kind whose String is name.
func ParseKind(name string) (Kind, bool) {
	for k, n := range kindNames {
		if n == name {
			return Kind(k), true
		}
	}
	return Internal, false
}

// Error is an error with a kind and a message that is safe to show a client.
// Param names the offending parameter for InvalidParams. Err, if set, is the cause; it
// is logged, never sent.
type Error struct {
	Kind    Kind
	Message string
	Param   string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// E returns an error of kind k with a client-safe message.
func E(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error of kind k with a client-safe message and a cause that stays
// server-side.
func Wrap(k Kind, err error, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...), Err: err}
}

// Param returns an InvalidParams error naming the parameter.
func Param(name, format string, args ...any) *Error {
	return &Error{Kind: InvalidParams, Param: name, Message: "invalid param " + name + ": " + fmt.Sprintf(format, args...)}
}

// Reason returns the message without the "invalid param NAME: " prefix that Param
// adds, for callers that name the param themselves (config errors, nested params).
func (e *Error) Reason() string {
	return strings.TrimPrefix(e.Message, "invalid param "+e.Param+": ")
}

// KindOf returns the kind of the first *Error in err's chain, or Internal.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err carries kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }

// HTTPStatus returns the HTTP status that transports over plain HTTP use for err.
func HTTPStatus(err error) int {
	switch KindOf(err) {
	case InvalidParams:
		return 400
	case Unauthenticated, InvalidCredentials:
		return 401
	case Forbidden:
		return 403
	case NotFound:
		return 404
	case Conflict:
		return 409
	case Execution:
		return 422
	case RateLimited:
		return 429
	case Overloaded:
		return 503
	}
	return 500
}

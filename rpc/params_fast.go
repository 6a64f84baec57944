package rpc

import (
	"encoding/json"
	"errors"
	"strings"
	"unicode/utf8"
)

// fastParams is implemented by the params of the methods called most (query, mutate):
// decodeFast reads a params object that json.Valid accepted into its receiver exactly
// as json.Unmarshal would, and reports false, leaving the receiver in any state, when
// it meets something it does not handle; Register then starts again from a zero value
// with json.Unmarshal, which also makes the errors. FuzzFastParams holds the two to
// the same result. A reflective decode was 4 µs of a mutation's CPU in the gateway.
type fastParams interface {
	decodeFast(raw []byte) bool
}

// field is one field of a fastParams struct: exactly one of str and raw is set.
type field struct {
	name string
	str  *string
	raw  *json.RawMessage
}

// errSlow stops a fast decode that must be left to json.Unmarshal.
var errSlow = errors.New("rpc: params need the reflective decoder")

// decodeFields is decodeFast for a struct of string and json.RawMessage fields.
// What it leaves to json.Unmarshal: params that are not an object, a string field
// with a value that is not a string or null, and a key that matches no field
// exactly but may match one as json.Unmarshal matches keys (case-insensitively, with
// Unicode's folds). Members of other names are ignored and a repeated member's last
// value wins, as json.Unmarshal does.
func decodeFields(raw []byte, fields ...field) bool {
	err := members(raw, func(k, v []byte) error {
		f, slow := fieldOf(fields, k)
		switch {
		case slow:
			return errSlow
		case f == nil:
			return nil
		case f.raw != nil:
			*f.raw = append(json.RawMessage(nil), v...)
		case string(v) == "null": // json.Unmarshal leaves a string as it was
		default:
			s, ok := stringValue(v)
			if !ok {
				return errSlow
			}
			*f.str = s
		}
		return nil
	})
	return err == nil
}

// fieldOf returns the field that key names exactly, or nil when it names none; slow
// is true when json.Unmarshal may match it to a field all the same.
func fieldOf(fields []field, key []byte) (f *field, slow bool) {
	for i := range fields {
		if keyIs(key, fields[i].name) {
			return &fields[i], false
		}
	}
	name, ok := unquote(key)
	if !ok {
		return nil, true
	}
	for i := range fields {
		if strings.EqualFold(name, fields[i].name) {
			return nil, true
		}
	}
	for i := 0; i < len(name); i++ {
		if name[i] >= utf8.RuneSelf { // Unicode folds some letters onto ASCII ones
			return nil, true
		}
	}
	return nil, false
}

// stringValue returns the Go string of a raw JSON string as json.Unmarshal decodes it,
// and false when v is not a string. unquote does it but for invalid UTF-8, which it
// keeps and json.Unmarshal replaces.
func stringValue(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	if utf8.Valid(v) {
		return unquote(v)
	}
	var s string
	return s, json.Unmarshal(v, &s) == nil
}

func (p *queryParams) decodeFast(raw []byte) bool {
	return decodeFields(raw, field{name: "contextId", str: &p.ContextID}, field{name: "method", str: &p.Method},
		field{name: "args", raw: &p.Args})
}

func (p *mutateParams) decodeFast(raw []byte) bool {
	return decodeFields(raw, field{name: "contextId", str: &p.ContextID}, field{name: "method", str: &p.Method},
		field{name: "args", raw: &p.Args}, field{name: "idempotencyKey", str: &p.IdempotencyKey})
}

package sdk

import (
	"encoding/json"
	"strconv"

	"github.com/circlegate/circlegate/internal/jsonx"
)

// encoding/json works by reflection, which is slow inside a wasm guest: a counter's
// increment spent about 8 of its 10 µs encoding and decoding three small values.
// The SDK therefore encodes and decodes the common simple values itself, byte for
// byte as encoding/json does, and a result or event type can encode itself by
// implementing JSONAppender. Everything else goes through encoding/json.

// JSONAppender is implemented by values that append their own JSON encoding to b.
// Return, Handle, Emit and SetJSON use it instead of encoding/json. The bytes must be
// valid JSON (the host refuses an output or event that is not), and should be what
// encoding/json would write, so that clients see no difference.
type JSONAppender interface {
	AppendJSON(b []byte) []byte
}

// marshalJSON encodes v as encoding/json's Marshal does.
func marshalJSON(v any) ([]byte, error) {
	switch x := v.(type) {
	case JSONAppender:
		return x.AppendJSON(nil), nil
	case nil:
		return []byte("null"), nil
	case bool:
		return strconv.AppendBool(nil, x), nil
	case int:
		return strconv.AppendInt(nil, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(nil, x, 10), nil
	case int32:
		return strconv.AppendInt(nil, int64(x), 10), nil
	case uint:
		return strconv.AppendUint(nil, uint64(x), 10), nil
	case uint64:
		return strconv.AppendUint(nil, x, 10), nil
	case uint32:
		return strconv.AppendUint(nil, uint64(x), 10), nil
	case string:
		if b, ok := AppendJSONString(nil, x); ok {
			return b, nil
		}
	}
	return json.Marshal(v)
}

// AppendJSONString appends s as a JSON string, as encoding/json writes it, when s is
// plain: printable ASCII without '"', '\\', '<', '>' or '&' (which encoding/json
// escapes). Otherwise it returns b unchanged and false.
func AppendJSONString(b []byte, s string) ([]byte, bool) { return jsonx.AppendPlainString(b, s) }

// unmarshalJSON decodes data into v as encoding/json's Unmarshal does.
func unmarshalJSON(data []byte, v any) error {
	switch p := v.(type) {
	case *int64:
		if n, ok := plainInt(data, 64); ok {
			*p = n
			return nil
		}
	case *int:
		if n, ok := plainInt(data, strconv.IntSize); ok {
			*p = int(n)
			return nil
		}
	case *string:
		if s, ok := plainString(data); ok {
			*p = s
			return nil
		}
	case *bool:
		switch string(data) {
		case "true":
			*p = true
			return nil
		case "false":
			*p = false
			return nil
		}
	}
	return json.Unmarshal(data, v)
}

// plainInt parses data when it is exactly a JSON integer (no spaces, no fraction or
// exponent) that fits in bits.
func plainInt(data []byte, bits int) (int64, bool) {
	digits := data
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) == 0 || len(digits) > 19 || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(data), 10, bits)
	return n, err == nil
}

// plainString returns the contents of data when it is exactly a JSON string of
// printable ASCII without escapes.
func plainString(data []byte) (string, bool) {
	if len(data) < 2 || data[0] != '"' || data[len(data)-1] != '"' {
		return "", false
	}
	inner := data[1 : len(data)-1]
	for _, c := range inner {
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return "", false
		}
	}
	return string(inner), true
}

// Package jsonx holds the small JSON helpers that the gateway's hand-written encoders
// share, each producing exactly what encoding/json would.
package jsonx

// PlainString reports whether encoding/json writes s unchanged between quotes:
// printable ASCII without '"', '\\' and the characters it escapes for HTML.
func PlainString(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}

// AppendPlainString appends s quoted, as encoding/json writes it, when s is plain
// (PlainString). Otherwise it returns b unchanged and false.
func AppendPlainString(b []byte, s string) ([]byte, bool) {
	if !PlainString(s) {
		return b, false
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), true
}

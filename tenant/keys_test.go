package tenant

import (
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/circlegate/circlegate/errs"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// testKey returns a fixed private key derived from seed.
func testKey(seed byte) *secp256k1.PrivateKey {
	var b [32]byte
	for i := range b {
		b[i] = seed + byte(i)
	}
	return secp256k1.PrivKeyFromBytes(b[:])
}

// wantKind fails t unless err carries kind and, if given, a message containing msg.
func wantKind(t *testing.T, err error, kind errs.Kind, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want %v %q", kind, msg)
	}
	if got := errs.KindOf(err); got != kind {
		t.Fatalf("error %q is of kind %v, want %v", err, got, kind)
	}
	if !strings.Contains(err.Error(), msg) {
		t.Fatalf("error %q does not contain %q", err, msg)
	}
}

func TestParsePubKeyErrors(t *testing.T) {
	pk := testKey(1).PubKey()
	comp := hex.EncodeToString(pk.SerializeCompressed())
	uncomp := hex.EncodeToString(pk.SerializeUncompressed())
	notOnCurveX := "02" + strings.Repeat("0", 62) + "05" // 5^3+7 is not a square mod p
	badY := uncomp[:128] + flipHex(uncomp[128:])
	tests := []struct {
		name, in, msg string
	}{
		{"empty", "", "got 0"},
		{"only prefix", "0x", "got 0"},
		{"compressed short", comp[:64], "got 64"},
		{"compressed long", comp + "00", "got 68"},
		{"uncompressed short", uncomp[:128], "got 128"},
		{"double prefix", "0x0x" + comp[2:], "not hex"},
		{"not hex", "zz" + comp[2:], "not hex"},
		{"space", " " + comp[1:], "not hex"},
		{"compressed prefix 04", "04" + comp[2:], "starts with 02 or 03"},
		{"compressed prefix 00", "00" + comp[2:], "starts with 02 or 03"},
		{"uncompressed prefix 02", "02" + uncomp[2:], "with 04"},
		{"hybrid prefix 06", "06" + uncomp[2:], "with 04"},
		{"hybrid prefix 07", "07" + uncomp[2:], "with 04"},
		{"x not on curve", notOnCurveX, "not a point on the secp256k1 curve"},
		{"x above p", "02" + strings.Repeat("f", 64), "not a point on the secp256k1 curve"},
		{"y off curve", badY, "not a point on the secp256k1 curve"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePubKey(tt.in)
			wantKind(t, err, errs.InvalidParams, tt.msg)
			if e := err.(*errs.Error); e.Param != "pubkey" {
				t.Fatalf("param %q, want pubkey", e.Param)
			}
			if _, err := NormalizePubKey(tt.in); errs.KindOf(err) != errs.InvalidParams {
				t.Fatalf("NormalizePubKey: %v", err)
			}
		})
	}
}

// flipHex changes the last hex digit of s.
func flipHex(s string) string {
	last := "1"
	if s[len(s)-1] == '1' {
		last = "2"
	}
	return s[:len(s)-1] + last
}

func TestNormalizePubKeySpellings(t *testing.T) {
	for seed := byte(1); seed <= 8; seed++ { // both 02 and 03 prefixes occur
		pk := testKey(seed).PubKey()
		want := hex.EncodeToString(pk.SerializeCompressed())
		uncomp := hex.EncodeToString(pk.SerializeUncompressed())
		for _, in := range []string{
			want, strings.ToUpper(want), "0x" + want, "0X" + strings.ToUpper(want),
			uncomp, strings.ToUpper(uncomp), "0x" + uncomp, "0X" + mixedCase(uncomp),
		} {
			got, err := NormalizePubKey(in)
			if err != nil {
				t.Fatalf("NormalizePubKey(%s): %v", in, err)
			}
			if got != want {
				t.Fatalf("NormalizePubKey(%s) = %s, want %s", in, got, want)
			}
			parsed, err := ParsePubKey(in)
			if err != nil || !parsed.IsEqual(pk) || PubKeyHex(parsed) != want {
				t.Fatalf("ParsePubKey(%s) = %v, %v", in, parsed, err)
			}
		}
	}
}

// mixedCase upper-cases every other character of s.
func mixedCase(s string) string {
	b := []byte(s)
	for i := 0; i < len(b); i += 2 {
		b[i] = strings.ToUpper(string(b[i]))[0]
	}
	return string(b)
}

func TestPubKeyHex(t *testing.T) {
	got := PubKeyHex(testKey(3).PubKey())
	if len(got) != 66 || strings.ToLower(got) != got || (got[:2] != "02" && got[:2] != "03") {
		t.Fatalf("PubKeyHex = %q", got)
	}
}

func TestKeyCacheBounded(t *testing.T) {
	c := &keyCache{m: make(map[string]string), max: 64}
	for i := range 1000 {
		c.put(strconv.Itoa(i), "n")
		if len(c.m) > c.max {
			t.Fatalf("cache holds %d entries, bound %d", len(c.m), c.max)
		}
	}
	if n, ok := c.get("999"); !ok || n != "n" {
		t.Fatal("the newest entry was dropped")
	}
}

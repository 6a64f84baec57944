package tenant

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/circlegate/circlegate/errs"
)

// Seeds from testdata/ethers_vector.json.
const (
	seedCompressed   = "0x024e3b81af9c2234cad09d679ce6035ed1392347ce64ce405f5dcd36228a25de6e"
	seedUncompressed = "0x044e3b81af9c2234cad09d679ce6035ed1392347ce64ce405f5dcd36228a25de6e47fd35c4215d1edf53e6f83de344615ce719bdb0fd878f6ed76f06dd277956de"
	seedSignature    = "0xc035fba4b3e32e105e296aa3638b7a210b921c74c2056613d29522ed00dd9593433acd89a0e0932de314e9976eb92e82924259d629dfcc37544c478b2e3300451c"
)

func FuzzParsePubKey(f *testing.F) {
	for _, s := range []string{seedCompressed, seedUncompressed, seedCompressed[2:], strings.ToUpper(seedUncompressed),
		"", "0x", "02", "06" + seedUncompressed[4:], "02" + strings.Repeat("f", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pk, err := ParsePubKey(s)
		norm, nerr := NormalizePubKey(s)
		if err != nil {
			if errs.KindOf(err) != errs.InvalidParams || nerr == nil {
				t.Fatalf("ParsePubKey: %v; NormalizePubKey: %v", err, nerr)
			}
			return
		}
		if nerr != nil || norm != PubKeyHex(pk) || len(norm) != 66 || strings.ToLower(norm) != norm {
			t.Fatalf("NormalizePubKey(%q) = %q, %v; PubKeyHex %q", s, norm, nerr, PubKeyHex(pk))
		}
		for _, again := range []string{norm, "0x" + hex.EncodeToString(pk.SerializeUncompressed()), strings.ToUpper(s)} {
			if n, err := NormalizePubKey(again); err != nil || n != norm {
				t.Fatalf("NormalizePubKey(%q) = %q, %v; want %q", again, n, err, norm)
			}
		}
	})
}

func FuzzParseSignature(f *testing.F) {
	for _, s := range []string{seedSignature, seedSignature[2:], seedSignature[:130] + "00", seedSignature[:130] + "02",
		"", "0x" + strings.Repeat("0", 130), "0x" + strings.Repeat("f", 128) + "1c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sig, err := ParseSignature(s)
		if err != nil {
			if errs.KindOf(err) != errs.InvalidParams {
				t.Fatalf("ParseSignature: %v", err)
			}
			return
		}
		if sig[64] > 1 {
			t.Fatalf("v = %d not normalized", sig[64])
		}
		for _, v := range []byte{sig[64], sig[64] + 27} {
			again := hex.EncodeToString(sig[:64]) + hex.EncodeToString([]byte{v})
			if got, err := ParseSignature(again); err != nil || got != sig {
				t.Fatalf("ParseSignature(%s) = %x, %v; want %x", again, got, err, sig)
			}
		}
		pk, err := RecoverPersonal([]byte("fuzz"), sig)
		if err != nil && errs.KindOf(err) != errs.InvalidCredentials {
			t.Fatalf("RecoverPersonal: %v", err)
		}
		if err == nil {
			if _, err := NormalizePubKey(PubKeyHex(pk)); err != nil {
				t.Fatalf("recovered key does not parse: %v", err)
			}
		}
	})
}

func FuzzTokensVerify(f *testing.F) {
	clock := newFakeClock()
	tok := NewTokens(testSecret, clock.Now)
	valid, _ := tok.Issue(tokTenant, tokKey, time.Hour)
	for _, s := range []string{valid, valid[:len(valid)-1], "cg1." + valid[4:] + "x", "cg1..", "", forge("e30"),
		forge(b64json(`{"i":"x","t":"` + tokTenant + `","p":"k","a":0,"e":9999999999}`))} {
		f.Add(s, tokTenant)
	}
	f.Add(valid, "other")
	f.Fuzz(func(t *testing.T, token, tenant string) {
		c, err := tok.Verify(token, tenant)
		if err != nil {
			if errs.KindOf(err) != errs.InvalidCredentials {
				t.Fatalf("Verify: %v", err)
			}
			return
		}
		if c.Tenant != tenant || c.ID == "" || c.PubKey == "" || !clock.Now().Before(c.ExpiresAt) || len(token) > maxTokenLen {
			t.Fatalf("Verify(%q, %q) accepted claims %+v", token, tenant, c)
		}
	})
}

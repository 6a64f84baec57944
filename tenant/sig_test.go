package tenant

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/circlegate/circlegate/errs"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"golang.org/x/crypto/sha3"
)

func TestPersonalHash(t *testing.T) {
	// Expected values from ethers 6.17.0 hashMessage.
	tests := []struct{ msg, want string }{
		{"hello world", "d9eba16ed0ecae432b71fe008c98cc872bb4cc214d3220a36f365326cf807d68"},
		{"", "5f35dce98ba4fba25530a026ed80b2cecdaa31091ba4958b99b52ea1d068adad"},
		{"héllo ✓", "a92524dcf72de9f2771f170e519c7fcc3305b814c130bfe3cf288b3d4b8d5906"}, // length in bytes
	}
	for _, tt := range tests {
		h := PersonalHash([]byte(tt.msg))
		if got := hex.EncodeToString(h[:]); got != tt.want {
			t.Errorf("PersonalHash(%q) = %s, want %s", tt.msg, got, tt.want)
		}
	}
}

func TestParseSignatureErrors(t *testing.T) {
	rs := strings.Repeat("ab", 64)
	tests := []struct{ name, in, msg string }{
		{"empty", "", "got 0"},
		{"short", rs + "1", "got 129"},
		{"long", rs + "1b00", "got 132"},
		{"no v", rs, "got 128"},
		{"not hex", rs[:126] + "zz1b", "not hex"},
		{"v 2", rs + "02", "v must be 0, 1, 27 or 28, got 2"},
		{"v 26", rs + "1a", "got 26"},
		{"v 29", rs + "1d", "got 29"},
		{"v 31 (decred compressed)", rs + "1f", "got 31"},
		{"v 37 (EIP-155)", rs + "25", "got 37"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSignature(tt.in)
			wantKind(t, err, errs.InvalidParams, tt.msg)
			if e := err.(*errs.Error); e.Param != "signature" {
				t.Fatalf("param %q, want signature", e.Param)
			}
		})
	}
}

func TestParseSignatureV(t *testing.T) {
	rs := strings.Repeat("01", 64)
	for _, tt := range []struct {
		in   string
		want byte
	}{
		{rs + "00", 0}, {rs + "01", 1}, {rs + "1b", 0}, {"0x" + rs + "1c", 1}, {"0X" + rs + "1C", 1},
	} {
		sig, err := ParseSignature(tt.in)
		if err != nil {
			t.Fatalf("ParseSignature(%s): %v", tt.in, err)
		}
		if sig[64] != tt.want || sig[0] != 1 || sig[63] != 1 {
			t.Fatalf("ParseSignature(%s) = %x", tt.in, sig)
		}
	}
}

// sigVariants returns every accepted spelling of sig (as made by SignPersonal).
func sigVariants(sig string) []string {
	body := sig[2:130]
	v := sig[130:]
	v01 := "00"
	if v == "1c" {
		v01 = "01"
	}
	return []string{sig, sig[2:], strings.ToUpper(sig[2:]), "0X" + body + v, "0x" + body + v01, body + v01}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	msgs := []string{"", "hello", strings.Repeat("n", 64), "héllo ✓", strings.Repeat("x", 1000)}
	seenV := map[string]bool{}
	for seed := byte(1); seed <= 6; seed++ {
		priv := testKey(seed)
		comp := PubKeyHex(priv.PubKey())
		uncomp := "0x" + hex.EncodeToString(priv.PubKey().SerializeUncompressed())
		for _, m := range msgs {
			sig := SignPersonal(priv, []byte(m))
			if len(sig) != 132 || sig[:2] != "0x" || (sig[130:] != "1b" && sig[130:] != "1c") {
				t.Fatalf("SignPersonal = %s", sig)
			}
			seenV[sig[130:]] = true
			if again := SignPersonal(priv, []byte(m)); again != sig {
				t.Fatalf("SignPersonal is not deterministic: %s then %s", sig, again)
			}
			for _, s := range sigVariants(sig) {
				for _, k := range []string{comp, uncomp} {
					if err := VerifyPersonal(k, []byte(m), s); err != nil {
						t.Fatalf("VerifyPersonal(%s, %q, %s): %v", k, m, s, err)
					}
				}
			}
		}
	}
	if !seenV["1b"] || !seenV["1c"] {
		t.Fatalf("test keys and messages did not produce both v values: %v", seenV)
	}
}

func TestVerifyPersonalFailures(t *testing.T) {
	priv := testKey(1)
	key := PubKeyHex(priv.PubKey())
	other := PubKeyHex(testKey(2).PubKey())
	msg := []byte("nonce")
	sig := SignPersonal(priv, msg)
	n := hex.EncodeToString(secp256k1.Params().N.Bytes())
	tests := []struct {
		name, key, msg, sig string
		kind                errs.Kind
		text                string
	}{
		{"wrong key", other, "nonce", sig, errs.InvalidCredentials, "does not match"},
		{"tampered message", key, "nonce!", sig, errs.InvalidCredentials, "does not match"},
		{"tampered r", key, "nonce", sig[:10] + flipHex(sig[10:11]) + sig[11:], errs.InvalidCredentials, "does not match"},
		{"tampered s", key, "nonce", sig[:100] + flipHex(sig[100:101]) + sig[101:], errs.InvalidCredentials, "does not match"},
		{"flipped v", key, "nonce", sig[:130] + flipV(sig[130:]), errs.InvalidCredentials, "does not match"},
		{"r zero", key, "nonce", "0x" + strings.Repeat("0", 64) + sig[66:], errs.InvalidCredentials, "does not match"},
		{"s zero", key, "nonce", sig[:66] + strings.Repeat("0", 64) + sig[130:], errs.InvalidCredentials, "does not match"},
		{"r = N", key, "nonce", "0x" + n + sig[66:], errs.InvalidCredentials, "does not match"},
		{"bad key", "02", "nonce", sig, errs.InvalidParams, "pubkey"},
		{"bad signature", key, "nonce", sig[:20], errs.InvalidParams, "signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantKind(t, VerifyPersonal(tt.key, []byte(tt.msg), tt.sig), tt.kind, tt.text)
		})
	}
}

// flipV swaps the v values 1b and 1c.
func flipV(v string) string {
	if v == "1b" {
		return "1c"
	}
	return "1b"
}

func TestVerifyPersonalAcceptsHighS(t *testing.T) {
	priv := testKey(4)
	msg := []byte("malleable")
	sig, err := ParseSignature(SignPersonal(priv, msg))
	if err != nil {
		t.Fatal(err)
	}
	var s secp256k1.ModNScalar
	s.SetByteSlice(sig[32:64])
	if s.IsOverHalfOrder() {
		t.Fatal("SignPersonal made a high-S signature")
	}
	s.Negate() // (r, N-s) with the other recovery id is the same signature
	s.PutBytesUnchecked(sig[32:64])
	sig[64] ^= 1
	if err := VerifyPersonal(PubKeyHex(priv.PubKey()), msg, hex.EncodeToString(sig[:])); err != nil {
		t.Fatalf("high-S signature refused: %v", err)
	}
}

func TestRecoverPersonalRejectsBadV(t *testing.T) {
	var sig [65]byte
	sig[64] = 2
	_, err := RecoverPersonal(nil, sig)
	wantKind(t, err, errs.InvalidParams, "v must be")
}

// ethersVector is tenant/testdata/ethers_vector.json, made by ethers_vector.mjs.
type ethersVector struct {
	Library      string `json:"library"`
	Version      string `json:"version"`
	PrivateKey   string `json:"private_key"`
	Address      string `json:"address"`
	Compressed   string `json:"public_key_compressed"`
	Uncompressed string `json:"public_key_uncompressed"`
	Message      string `json:"message"`
	MessageHash  string `json:"message_hash"`
	Signature    string `json:"signature"`
}

func loadEthersVector(t *testing.T) ethersVector {
	t.Helper()
	b, err := os.ReadFile("testdata/ethers_vector.json")
	if err != nil {
		t.Fatal(err)
	}
	var v ethersVector
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if v.Library != "ethers" || !strings.HasPrefix(v.Version, "6.") || v.Signature == "" {
		t.Fatalf("unexpected vector %+v", v)
	}
	return v
}

func TestEthersVector(t *testing.T) {
	v := loadEthersVector(t)
	msg := []byte(v.Message)
	for _, key := range []string{v.Compressed, v.Uncompressed} {
		if err := VerifyPersonal(key, msg, v.Signature); err != nil {
			t.Fatalf("ethers %s signature refused with key %s: %v", v.Version, key, err)
		}
		wantKind(t, VerifyPersonal(key, []byte(v.Message+"x"), v.Signature), errs.InvalidCredentials, "does not match")
	}
	if h := PersonalHash(msg); "0x"+hex.EncodeToString(h[:]) != v.MessageHash {
		t.Fatalf("PersonalHash = %x, ethers hashMessage = %s", h, v.MessageHash)
	}
	privBytes, err := hex.DecodeString(trimHexPrefix(v.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	priv := secp256k1.PrivKeyFromBytes(privBytes)
	if got, _ := NormalizePubKey(v.Uncompressed); got != PubKeyHex(priv.PubKey()) || "0x"+got != v.Compressed {
		t.Fatalf("key mismatch: %s, %s, %s", got, PubKeyHex(priv.PubKey()), v.Compressed)
	}
	if got := ethAddress(priv.PubKey()); !strings.EqualFold(got, v.Address) {
		t.Fatalf("address %s, ethers %s", got, v.Address)
	}
	// Both sides use RFC 6979 nonces and low S, so the signatures are identical.
	if got := SignPersonal(priv, msg); got != v.Signature {
		t.Fatalf("SignPersonal = %s, ethers = %s", got, v.Signature)
	}
}

// ethAddress returns the Ethereum address of pk: the last 20 bytes of the keccak256 of
// the uncompressed key without its 04 prefix.
func ethAddress(pk *secp256k1.PublicKey) string {
	h := sha3.NewLegacyKeccak256()
	h.Write(pk.SerializeUncompressed()[1:])
	return "0x" + hex.EncodeToString(h.Sum(nil)[12:])
}

package tenant

import (
	"crypto/rand"
	"testing"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// TestRecoverBackendsAgree checks this build's recovery against decred's on random
// keys and messages, for both recovery ids and for high-S signatures.
func TestRecoverBackendsAgree(t *testing.T) {
	t.Logf("recovery backend: %s", recoverBackend)
	for i := range 200 {
		priv, _ := secp256k1.GeneratePrivateKey()
		var digest [32]byte
		_, _ = rand.Read(digest[:])
		compact := ecdsa.SignCompact(priv, digest[:], false)
		var sig [65]byte
		copy(sig[:64], compact[1:])
		v := compact[0] - compactMagic
		if i%2 == 1 { // the same signature with s negated (high S) and the other recovery id
			var s secp256k1.ModNScalar
			s.SetByteSlice(sig[32:64])
			s.Negate()
			b := s.Bytes()
			copy(sig[32:64], b[:])
			v ^= 1
		}
		got, err := recoverKey(digest, sig, v)
		want, werr := recoverDcrd(digest, sig, v)
		if err != nil || werr != nil || !got.IsEqual(want) || !got.IsEqual(priv.PubKey()) {
			t.Fatalf("case %d: %s recovered %v (%v), dcrd %v (%v)", i, recoverBackend, got, err, want, werr)
		}
	}
	var zero [65]byte
	if _, err := recoverKey([32]byte{1}, zero, 0); err == nil {
		t.Fatal("recovered a key from an all-zero signature")
	}
}

// TestSignBackendsAgree: this build's signer makes exactly decred's signature (both
// are RFC 6979 with low S), and it recovers to the signer.
func TestSignBackendsAgree(t *testing.T) {
	for i := range 200 {
		priv, _ := secp256k1.GeneratePrivateKey()
		var digest [32]byte
		_, _ = rand.Read(digest[:])
		got, want := signKey(priv, digest), signDcrd(priv, digest)
		if got != want {
			t.Fatalf("case %d: %s signed %x, dcrd %x", i, recoverBackend, got, want)
		}
		if pk, err := recoverKey(digest, got, got[64]); err != nil || !pk.IsEqual(priv.PubKey()) {
			t.Fatalf("case %d: the signature recovers %v (%v)", i, pk, err)
		}
	}
}

func BenchmarkRecoverPersonal(b *testing.B) {
	priv, _ := secp256k1.GeneratePrivateKey()
	msg := []byte("9b1c6f2e5d3a4b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c")
	sig, _ := ParseSignature(SignPersonal(priv, msg))
	b.Run(recoverBackend, func(b *testing.B) {
		for b.Loop() {
			if _, err := RecoverPersonal(msg, sig); err != nil {
				b.Fatal(err)
			}
		}
	})
}

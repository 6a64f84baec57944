package bench

import (
	"testing"
	"time"

	"github.com/circlegate/circlegate/tenant"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// The steps of one handshake's authentication, each timed on its own: the gateway
// parses the client key in fetch_nonce and authenticate and the tenant key in the URL,
// recovers the signer from the signature, and issues a token; the client signs.

var (
	clientKey, _ = secp256k1.GeneratePrivateKey()
	clientPub    = tenant.PubKeyHex(clientKey.PubKey())
	nonce        = []byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	signature    = tenant.SignPersonal(clientKey, nonce)
)

func BenchmarkNormalizePubKey(b *testing.B) {
	for b.Loop() {
		if _, err := tenant.NormalizePubKey(clientPub); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecoverPersonal(b *testing.B) {
	sig, err := tenant.ParseSignature(signature)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := tenant.RecoverPersonal(nonce, sig); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignPersonal(b *testing.B) {
	for b.Loop() {
		tenant.SignPersonal(clientKey, nonce)
	}
}

func BenchmarkTokenIssue(b *testing.B) {
	tokens := tenant.NewTokens(make([]byte, 32), nil)
	for b.Loop() {
		tokens.Issue(clientPub, clientPub, time.Hour)
	}
}

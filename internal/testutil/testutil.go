// Package testutil holds helpers shared by the tests of several packages: polling
// for a condition instead of sleeping, and fresh secp256k1 keys.
package testutil

import (
	"testing"
	"time"

	"github.com/circlegate/circlegate/tenant"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// CheckFor calls fn every few milliseconds until it returns nil or timeout passes,
// then fails the test with fn's last error.
func CheckFor(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = fn(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v: %v", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Key is a secp256k1 key pair for tests.
type Key struct {
	Priv *secp256k1.PrivateKey
	// Pub is the lowercase compressed hex of the public key.
	Pub string
}

// NewKey returns a fresh key pair.
func NewKey(t testing.TB) Key {
	t.Helper()
	priv, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return Key{Priv: priv, Pub: tenant.PubKeyHex(priv.PubKey())}
}

// Sign returns the EIP-191 personal_sign signature of msg, as ethers makes it.
func (k Key) Sign(msg string) string { return tenant.SignPersonal(k.Priv, []byte(msg)) }

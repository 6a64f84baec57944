//go:build !cgo

package tenant

import "github.com/decred/dcrd/dcrec/secp256k1/v4"

// recoverBackend names the implementation of public key recovery in this build.
const recoverBackend = "dcrd"

// recoverKey recovers the signer with decred's pure-Go secp256k1 (builds without cgo).
func recoverKey(digest [32]byte, sig [65]byte, v byte) (*secp256k1.PublicKey, error) {
	return recoverDcrd(digest, sig, v)
}

// signKey signs with decred's pure-Go secp256k1.
func signKey(priv *secp256k1.PrivateKey, digest [32]byte) [65]byte {
	return signDcrd(priv, digest)
}

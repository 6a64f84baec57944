//go:build cgo

package tenant

import (
	gethsecp "github.com/ethereum/go-ethereum/crypto/secp256k1"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// recoverBackend names the implementation of public key recovery in this build.
const recoverBackend = "libsecp256k1"

// recoverKey recovers the signer with libsecp256k1 (bitcoin-core's C library, as
// go-ethereum bundles it): about 4 times faster than the pure-Go recovery, and
// recovery is most of the CPU of an authentication.
func recoverKey(digest [32]byte, sig [65]byte, v byte) (*secp256k1.PublicKey, error) {
	var rsv [65]byte
	copy(rsv[:64], sig[:64])
	rsv[64] = v
	uncompressed, err := gethsecp.RecoverPubkey(digest[:], rsv[:])
	if err != nil {
		return nil, err
	}
	return secp256k1.ParsePubKey(uncompressed)
}

// signKey signs with libsecp256k1 (RFC 6979, low S, as decred signs: the same
// signature, about twice as fast). Load generators and the client sign every nonce.
func signKey(priv *secp256k1.PrivateKey, digest [32]byte) [65]byte {
	seckey := priv.Key.Bytes()
	rsv, err := gethsecp.Sign(digest[:], seckey[:])
	if err != nil || len(rsv) != 65 { // only for an invalid key, which a PrivateKey is not
		return signDcrd(priv, digest)
	}
	return [65]byte(rsv)
}

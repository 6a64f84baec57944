package tenant

import (
	"encoding/hex"
	"strconv"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
	"golang.org/x/crypto/sha3"

	"github.com/circlegate/circlegate/errs"
)

// personalPrefix starts every EIP-191 version 0x45 ("personal_sign") message.
const personalPrefix = "\x19Ethereum Signed Message:\n"

// sigHexLen is the hex length of an Ethereum signature r(32) || s(32) || v(1).
const sigHexLen = 2 * 65

// compactMagic is the offset decred adds to the recovery id in its compact signatures,
// the same 27 that Ethereum adds to v.
const compactMagic = 27

// PersonalHash returns the EIP-191 personal_sign digest of msg:
// keccak256("\x19Ethereum Signed Message:\n" + decimal len(msg) + msg).
func PersonalHash(msg []byte) [32]byte {
	h := sha3.NewLegacyKeccak256()
	var n [20]byte
	h.Write([]byte(personalPrefix))
	h.Write(strconv.AppendInt(n[:0], int64(len(msg)), 10))
	h.Write(msg)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// ParseSignature parses an Ethereum signature r || s || v written as 130 hex
// characters, with an optional 0x or 0X prefix, in any case. v must be 0, 1, 27 or 28;
// the returned array holds v as the recovery id 0 or 1. Errors are errs.InvalidParams
// naming the parameter "signature".
func ParseSignature(s string) ([65]byte, error) {
	var sig [65]byte
	h := trimHexPrefix(s)
	if len(h) != sigHexLen {
		return sig, errs.Param("signature", "want %d hex characters (r, s, v), got %d", sigHexLen, len(h))
	}
	if _, err := hex.Decode(sig[:], []byte(h)); err != nil {
		return [65]byte{}, errs.Param("signature", "not hex")
	}
	v, ok := recoveryID(sig[64])
	if !ok {
		return [65]byte{}, errs.Param("signature", "v must be 0, 1, 27 or 28, got %d", sig[64])
	}
	sig[64] = v
	return sig, nil
}

// recoveryID maps an Ethereum v (0, 1, 27 or 28) to the recovery id 0 or 1.
func recoveryID(v byte) (byte, bool) {
	switch v {
	case 0, 1:
		return v, true
	case compactMagic, compactMagic + 1:
		return v - compactMagic, true
	}
	return 0, false
}

// RecoverPersonal returns the public key that made sig, an Ethereum signature
// r || s || v (v being 0, 1, 27 or 28), over the personal_sign digest of msg. A
// signature that recovers no key is errs.InvalidCredentials.
//
// High-S signatures are accepted: ethers and every common wallet produce low S, but
// the other form is just as unforgeable, and malleability does not matter here because
// the signed nonce is single-use and a signature is never used as an identifier.
func RecoverPersonal(msg []byte, sig [65]byte) (*secp256k1.PublicKey, error) {
	v, ok := recoveryID(sig[64])
	if !ok {
		return nil, errs.Param("signature", "v must be 0, 1, 27 or 28, got %d", sig[64])
	}
	digest := PersonalHash(msg)
	pk, err := recoverKey(digest, sig, v)
	if err != nil {
		return nil, errs.Wrap(errs.InvalidCredentials, err, "signature does not match pubkey")
	}
	return pk, nil
}

// recoverDcrd recovers the signer with decred's pure-Go secp256k1: the build without
// cgo, and the reference the cgo backend is tested against.
func recoverDcrd(digest [32]byte, sig [65]byte, v byte) (*secp256k1.PublicKey, error) {
	// decred's compact layout is [27 + recid] || r || s; the +4 "compressed" flag only
	// tells the caller how the key was serialized and does not change the key.
	var compact [65]byte
	compact[0] = compactMagic + v
	copy(compact[1:], sig[:64])
	pk, _, err := ecdsa.RecoverCompact(compact[:], digest[:])
	return pk, err
}

// VerifyPersonal checks that sigHex is pubkeyHex's personal_sign signature of msg.
// A malformed key or signature is errs.InvalidParams; a signature by another key, over
// another message, or one that recovers no key, is errs.InvalidCredentials.
func VerifyPersonal(pubkeyHex string, msg []byte, sigHex string) error {
	want, err := ParsePubKey(pubkeyHex)
	if err != nil {
		return err
	}
	sig, err := ParseSignature(sigHex)
	if err != nil {
		return err
	}
	got, err := RecoverPersonal(msg, sig)
	if err != nil {
		return err
	}
	if !got.IsEqual(want) {
		return errs.E(errs.InvalidCredentials, "signature does not match pubkey")
	}
	return nil
}

// SignPersonal signs msg the way ethers' wallet.signMessage does: RFC 6979
// deterministic, low S, returned as "0x" + hex(r || s || v) with v = 27 or 28.
func SignPersonal(priv *secp256k1.PrivateKey, msg []byte) string {
	sig := signKey(priv, PersonalHash(msg))
	sig[64] += compactMagic
	return "0x" + hex.EncodeToString(sig[:])
}

// signDcrd signs digest with decred's pure-Go secp256k1 (RFC 6979, low S) and returns
// r || s || recovery id (0 or 1): the build without cgo, and the reference the cgo
// backend is tested against.
func signDcrd(priv *secp256k1.PrivateKey, digest [32]byte) [65]byte {
	compact := ecdsa.SignCompact(priv, digest[:], false)
	// compact is [27 + recid] || r || s. recid 2 and 3 (R's x >= N) happen with
	// probability about 2^-127 and have no Ethereum v; only the oddness bit is kept.
	var sig [65]byte
	copy(sig[:64], compact[1:])
	sig[64] = (compact[0] - compactMagic) & 1
	return sig
}

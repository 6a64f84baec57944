package tenant

import (
	"encoding/hex"
	"sync"

	"github.com/circlegate/circlegate/errs"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// Hex lengths of the two accepted public key spellings.
const (
	compressedHexLen   = 2 * secp256k1.PubKeyBytesLenCompressed   // 66
	uncompressedHexLen = 2 * secp256k1.PubKeyBytesLenUncompressed // 130
)

// ParsePubKey parses a secp256k1 public key written in hex: compressed (66 characters,
// prefix 02 or 03) or uncompressed (130 characters, prefix 04), with an optional 0x or
// 0X prefix, in any case. The key must be a point on the curve. Errors are
// errs.InvalidParams naming the parameter "pubkey".
func ParsePubKey(s string) (*secp256k1.PublicKey, error) {
	h := trimHexPrefix(s)
	if len(h) != compressedHexLen && len(h) != uncompressedHexLen {
		return nil, errs.Param("pubkey", "want %d (compressed) or %d (uncompressed) hex characters, got %d",
			compressedHexLen, uncompressedHexLen, len(h))
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, errs.Param("pubkey", "not hex")
	}
	if !pubKeyPrefixOK(b) {
		return nil, errs.Param("pubkey", "a compressed key starts with 02 or 03, an uncompressed one with 04")
	}
	pk, err := secp256k1.ParsePubKey(b)
	if err != nil {
		return nil, errs.Param("pubkey", "not a point on the secp256k1 curve")
	}
	return pk, nil
}

// pubKeyPrefixOK reports whether the format byte fits the length. It rejects the
// hybrid format (06/07) that secp256k1.ParsePubKey would accept.
func pubKeyPrefixOK(b []byte) bool {
	if len(b) == secp256k1.PubKeyBytesLenCompressed {
		return b[0] == secp256k1.PubKeyFormatCompressedEven || b[0] == secp256k1.PubKeyFormatCompressedOdd
	}
	return b[0] == secp256k1.PubKeyFormatUncompressed
}

// NormalizePubKey parses s like ParsePubKey and returns the key as lowercase compressed
// hex (66 characters, no 0x), so that every spelling of one key yields one string.
func NormalizePubKey(s string) (string, error) {
	if n, ok := validKeys.get(s); ok {
		return n, nil
	}
	pk, err := ParsePubKey(s)
	if err != nil {
		return "", err
	}
	n := PubKeyHex(pk)
	validKeys.put(s, n)
	return n, nil
}

// validKeys remembers recently validated keys (as spelled, normalized), so a key that
// arrives in fetch_nonce and then in authenticate is decompressed (a modular square
// root) once. Only keys that parsed are kept; the cache is bounded.
var validKeys = &keyCache{m: make(map[string]string), max: 8192}

type keyCache struct {
	mu  sync.Mutex
	m   map[string]string
	max int
}

func (c *keyCache) get(s string) (string, bool) {
	c.mu.Lock()
	n, ok := c.m[s]
	c.mu.Unlock()
	return n, ok
}

func (c *keyCache) put(s, n string) {
	c.mu.Lock()
	if len(c.m) >= c.max {
		for k := range c.m { // drop an arbitrary eighth
			delete(c.m, k)
			if len(c.m) < c.max-c.max/8 {
				break
			}
		}
	}
	c.m[s] = n
	c.mu.Unlock()
}

// PubKeyHex returns pk as lowercase compressed hex (66 characters, no 0x).
func PubKeyHex(pk *secp256k1.PublicKey) string {
	return hex.EncodeToString(pk.SerializeCompressed())
}

// trimHexPrefix removes one leading 0x or 0X.
func trimHexPrefix(s string) string {
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		return s[2:]
	}
	return s
}

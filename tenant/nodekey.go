package tenant

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// nodeKeyFile is the name of the node's secp256k1 private key in the data directory.
const nodeKeyFile = "node.key"

// LoadOrCreateNodeKey returns the node's own secp256k1 key, stored raw (32 bytes) in
// <dataDir>/node.key, creating it if it does not exist (mode 0600, atomically). The
// node signs admin challenges with it, so that a client can check which node it talks
// to; its public half is the node's identity. A file of another size, or a scalar
// that is not a valid key, is an error.
func LoadOrCreateNodeKey(dataDir string) (*secp256k1.PrivateKey, error) {
	path := filepath.Join(dataDir, nodeKeyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := NodeKeyFromBytes(b)
		if err != nil {
			return nil, fmt.Errorf("node key %s: %w", path, err)
		}
		return k, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("node key: %w", err)
	}
	priv, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	if err := writeFileAtomic(dataDir, nodeKeyFile, priv.Serialize()); err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	return priv, nil
}

// NodeKeyFromBytes returns the private key of 32 raw bytes: a scalar below the curve
// order and not zero.
func NodeKeyFromBytes(b []byte) (*secp256k1.PrivateKey, error) {
	if len(b) != secp256k1.PrivKeyBytesLen {
		return nil, fmt.Errorf("want %d bytes, got %d", secp256k1.PrivKeyBytesLen, len(b))
	}
	var s secp256k1.ModNScalar
	if overflow := s.SetByteSlice(b); overflow || s.IsZero() {
		return nil, errors.New("not a valid secp256k1 private key")
	}
	return secp256k1.NewPrivateKey(&s), nil
}

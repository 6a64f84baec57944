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
		return parseNodeKey(path, b)
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

func parseNodeKey(path string, b []byte) (*secp256k1.PrivateKey, error) {
	if len(b) != secp256k1.PrivKeyBytesLen {
		return nil, fmt.Errorf("node key %s: want %d bytes, got %d", path, secp256k1.PrivKeyBytesLen, len(b))
	}
	var s secp256k1.ModNScalar
	if overflow := s.SetByteSlice(b); overflow || s.IsZero() {
		return nil, fmt.Errorf("node key %s: not a valid secp256k1 private key", path)
	}
	return secp256k1.NewPrivateKey(&s), nil
}

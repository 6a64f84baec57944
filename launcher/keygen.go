package launcher

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	"github.com/circlegate/circlegate/tenant"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// KeyPair is a secp256k1 key pair as keygen prints it.
type KeyPair struct {
	PrivateKey string `json:"privateKey"`
	PublicKey  string `json:"publicKey"`
}

// NewKeyPair makes a fresh key pair from crypto/rand.
func NewKeyPair() KeyPair {
	priv, err := secp256k1.GeneratePrivateKey()
	if err != nil {
		panic("keygen: no randomness: " + err.Error())
	}
	return KeyPair{PrivateKey: hex.EncodeToString(priv.Serialize()), PublicKey: tenant.PubKeyHex(priv.PubKey())}
}

func runKeygen(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: circlegate keygen")
		return 2
	}
	b, _ := json.Marshal(NewKeyPair())
	fmt.Fprintln(stdout, string(b))
	return 0
}

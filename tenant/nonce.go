package tenant

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/circlegate/circlegate/errs"
)

// nonceBytes is the number of random bytes in a nonce; its hex form is twice as long.
const nonceBytes = 32

// Nonce is a single-use challenge a client signs to authenticate.
type Nonce struct {
	Value     string    // 64 lowercase hex characters
	ExpiresAt time.Time // the nonce cannot be consumed from this instant on
}

// NonceStore issues and consumes authentication nonces. The tenant and pubkey
// arguments are already normalized (see NormalizePubKey). Implementations are safe for
// concurrent use.
type NonceStore interface {
	// Issue creates a nonce for pubkey in tenant.
	Issue(ctx context.Context, tenant, pubkey string) (Nonce, error)
	// Consume removes the nonce value. It succeeds only if the nonce exists, is
	// unexpired and was issued for the same tenant and pubkey; otherwise it returns
	// errs.InvalidCredentials without saying which check failed.
	Consume(ctx context.Context, tenant, pubkey, value string) error
	// Outstanding returns the unexpired nonces of pubkey in tenant, newest first: the
	// order authentication tries them in when the client does not name one.
	Outstanding(ctx context.Context, tenant, pubkey string) ([]string, error)
}

// newNonceValue returns 32 random bytes from crypto/rand as hex.
func newNonceValue() string {
	var b [nonceBytes]byte
	rand.Read(b[:]) // never fails; it crashes the program if the OS has no randomness
	return hex.EncodeToString(b[:])
}

// errBadNonce is what Consume returns for any failure.
func errBadNonce() error {
	return errs.E(errs.InvalidCredentials, "nonce unknown, expired, used or issued for another key")
}

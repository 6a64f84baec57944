package tenant

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/circlegate/circlegate/errs"
)

// Bearer token layout: tokenPrefix + base64url(payload JSON) + "." + base64url(MAC),
// the MAC being HMAC-SHA256 under the node secret of everything before the last dot.
const (
	tokenPrefix   = "cg1."
	maxTokenLen   = 1024
	tokenIDBytes  = 16
	minSecretLen  = 16
	tokenMACBytes = sha256.Size
)

// b64 is base64url without padding, strict so that each token has one spelling.
var b64 = base64.RawURLEncoding.Strict()

// Claims is what a bearer token says.
type Claims struct {
	ID        string    // 32 hex characters, random
	Tenant    string    // the tenant's normalized public key
	PubKey    string    // the caller's normalized public key
	IssuedAt  time.Time // whole seconds
	ExpiresAt time.Time // whole seconds; the token is refused from this instant on
}

// tokenPayload is the JSON form of Claims, with short keys to keep tokens small.
type tokenPayload struct {
	ID        string `json:"i"`
	Tenant    string `json:"t"`
	PubKey    string `json:"p"`
	IssuedAt  int64  `json:"a"`
	ExpiresAt int64  `json:"e"`
}

// Tokens issues and verifies bearer tokens signed with HMAC-SHA256 under a node
// secret. It is safe for concurrent use; make one with NewTokens.
type Tokens struct {
	secret []byte
	now    func() time.Time
	states sync.Pool // of *tokenState
}

// tokenState is the scratch space of one Verify or Issue, pooled so that the hot path
// allocates little beyond the returned claims.
type tokenState struct {
	mac     hash.Hash // HMAC-SHA256 keyed with the secret
	sum     [tokenMACBytes]byte
	token   [maxTokenLen]byte
	payload [maxTokenLen]byte
}

// NewTokens returns a token issuer keyed with secret (copied), which must be at least
// 16 bytes; LoadOrCreateSecret makes a suitable one. now nil means time.Now. A shorter
// secret is a programming error and panics.
func NewTokens(secret []byte, now func() time.Time) *Tokens {
	if len(secret) < minSecretLen {
		panic("tenant: token secret shorter than 16 bytes")
	}
	if now == nil {
		now = time.Now
	}
	t := &Tokens{secret: append([]byte(nil), secret...), now: now}
	t.states.New = func() any { return &tokenState{mac: hmac.New(sha256.New, t.secret)} }
	return t
}

// Issue returns a token for pubkey in tenant, valid for ttl, and its claims.
func (t *Tokens) Issue(tenant, pubkey string, ttl time.Duration) (string, Claims) {
	return t.issue(tenant, pubkey, ttl, 0)
}

// issue is Issue with IssuedAt at least minIssued (Unix seconds): a token issued in
// the same second as a revocation of its key must not fall under it (revocation.go).
func (t *Tokens) issue(tenant, pubkey string, ttl time.Duration, minIssued int64) (string, Claims) {
	now := t.now()
	var id [tokenIDBytes]byte
	rand.Read(id[:]) // never fails
	c := Claims{
		ID:        hex.EncodeToString(id[:]),
		Tenant:    tenant,
		PubKey:    pubkey,
		IssuedAt:  time.Unix(max(now.Unix(), minIssued), 0),
		ExpiresAt: time.Unix(now.Add(ttl).Unix(), 0),
	}
	payload, _ := json.Marshal(tokenPayload{c.ID, c.Tenant, c.PubKey, c.IssuedAt.Unix(), c.ExpiresAt.Unix()})
	signed := tokenPrefix + b64.EncodeToString(payload)
	st := t.states.Get().(*tokenState)
	defer t.states.Put(st)
	return signed + "." + b64.EncodeToString(st.sign([]byte(signed))), c
}

// Verify checks token's format, signature (in constant time), expiry and tenant, and
// returns its claims. Every failure is errs.InvalidCredentials. Tokens longer than
// 1024 bytes are refused before any decoding; the payload is parsed only once the
// signature holds.
func (t *Tokens) Verify(token, tenant string) (Claims, error) {
	c, err := t.verifyMAC(token)
	if err != nil {
		return Claims{}, err
	}
	if c.Tenant != tenant {
		return Claims{}, errs.E(errs.InvalidCredentials, "token for another tenant")
	}
	if !t.now().Before(c.ExpiresAt) {
		return Claims{}, errs.E(errs.InvalidCredentials, "token expired")
	}
	return c, nil
}

// VerifyAny is Verify for a token of any tenant (or of the node): the caller decides
// from the claims what the token may do.
func (t *Tokens) VerifyAny(token string) (Claims, error) {
	c, err := t.verifyMAC(token)
	if err != nil {
		return Claims{}, err
	}
	if !t.now().Before(c.ExpiresAt) {
		return Claims{}, errs.E(errs.InvalidCredentials, "token expired")
	}
	return c, nil
}

// verifyMAC checks token's format and signature and decodes its claims.
func (t *Tokens) verifyMAC(token string) (Claims, error) {
	dot, ok := splitToken(token)
	if !ok {
		return Claims{}, errs.E(errs.InvalidCredentials, "malformed token")
	}
	st := t.states.Get().(*tokenState)
	defer t.states.Put(st)
	raw := st.token[:copy(st.token[:], token)]
	var got [tokenMACBytes]byte
	if n, err := b64.Decode(got[:], raw[dot+1:]); err != nil || n != tokenMACBytes {
		return Claims{}, errs.E(errs.InvalidCredentials, "malformed token")
	}
	if !hmac.Equal(st.sign(raw[:dot]), got[:]) {
		return Claims{}, errs.E(errs.InvalidCredentials, "bad token signature")
	}
	return st.decodeClaims(raw[len(tokenPrefix):dot])
}

// splitToken checks the length, prefix and MAC size of token without decoding it, and
// returns the index of the dot before the MAC.
func splitToken(token string) (dot int, ok bool) {
	if len(token) > maxTokenLen || !strings.HasPrefix(token, tokenPrefix) {
		return 0, false
	}
	dot = strings.LastIndexByte(token, '.')
	if dot < len(tokenPrefix) || len(token)-dot-1 != b64.EncodedLen(tokenMACBytes) {
		return 0, false
	}
	return dot, true
}

// decodeClaims decodes an authenticated payload.
func (st *tokenState) decodeClaims(payloadB64 []byte) (Claims, error) {
	n, err := b64.Decode(st.payload[:], payloadB64)
	var p tokenPayload
	if err == nil {
		err = json.Unmarshal(st.payload[:n], &p)
	}
	if err != nil || p.ID == "" || p.Tenant == "" || p.PubKey == "" {
		return Claims{}, errs.E(errs.InvalidCredentials, "malformed token")
	}
	return Claims{
		ID:        p.ID,
		Tenant:    p.Tenant,
		PubKey:    p.PubKey,
		IssuedAt:  time.Unix(p.IssuedAt, 0),
		ExpiresAt: time.Unix(p.ExpiresAt, 0),
	}, nil
}

// sign returns HMAC-SHA256(secret, signed) in st.sum.
func (st *tokenState) sign(signed []byte) []byte {
	st.mac.Reset()
	st.mac.Write(signed)
	return st.mac.Sum(st.sum[:0])
}

// secretFile is the name of the node secret in the data directory.
const secretFile = "node.secret"

// secretLen is the size of the node secret in bytes.
const secretLen = 32

// LoadOrCreateSecret returns the 32-byte node secret stored raw in
// <dataDir>/node.secret, creating it if it does not exist (the directory with mode
// 0700, the file with mode 0600, atomically) so that tokens stay valid across
// restarts. A file of another size is an error: delete it to make a new secret, which
// invalidates every token issued so far.
func LoadOrCreateSecret(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, secretFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil && len(b) != secretLen:
		return nil, fmt.Errorf("node secret %s: want %d bytes, got %d", path, secretLen, len(b))
	case err == nil:
		return b, nil
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("node secret: %w", err)
	}
	secret := make([]byte, secretLen)
	rand.Read(secret) // never fails
	if err := writeFileAtomic(dataDir, secretFile, secret); err != nil {
		return nil, fmt.Errorf("node secret: %w", err)
	}
	return secret, nil
}

// writeFileAtomic writes data to dir/name with mode 0600 through a synced temporary
// file renamed into place, then syncs dir so that the rename survives a crash.
func writeFileAtomic(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, name+".tmp-*") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir fsyncs a directory.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

package tenant

import (
	"context"
	"encoding/json"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
)

// Revocation refuses tokens before they expire. Tokens stay stateless (one HMAC to
// verify); a deny-list beside the MAC holds
//   - revoked token ids, each until the token would have expired anyway, and
//   - revoked keys: every token of a key (or of every key) in a scope (a tenant, the
//     node, or every scope) issued at or before a second.
//
// A token issued in the same second as a revocation that covers its key gets an
// IssuedAt one second past it, so a key may authenticate again at once.
//
// With Records attached (UseRecords), each revocation is written to the node's store
// records before it applies, and SyncRevocations picks up those that other gateways
// of a fleet wrote.

// All names every key of a scope (as the pubkey of RevokeKeys) or every scope.
const All = "*"

// Store record kinds of the node (tenant "") that hold revocations.
const (
	recordRevokedToken = "auth.revoked-token" // id: <scope>/<tokenId>
	recordRevokedKeys  = "auth.revoked-keys"  // id: <scope>/<pubkey>, either may be All
)

// Records is the part of store.Store that keeps revocations durable.
type Records interface {
	PutRecord(ctx context.Context, tenant, kind, id string, value []byte) error
	DeleteRecord(ctx context.Context, tenant, kind, id string) (existed bool, err error)
	ListRecords(ctx context.Context, tenant, kind, after string, limit int, reverse bool) ([]store.Record, error)
}

// scoped is a key of the deny-list: a scope (tenant key, node key or All) and a token
// id or a pubkey (or All).
type scoped struct{ scope, id string }

// denyList is an immutable snapshot of the revocations in force.
type denyList struct {
	tokens map[scoped]int64 // (scope, token id) -> the token's expiry, Unix seconds
	keys   map[scoped]int64 // (scope, pubkey) -> revoked through this second
}

// refuses reports whether a token with these claims is revoked.
func (d *denyList) refuses(scope, pubkey, tokenID string, issuedAt int64) bool {
	if d == nil {
		return false
	}
	if _, ok := d.tokens[scoped{scope, tokenID}]; ok {
		return true
	}
	through, ok := d.notBefore(scope, pubkey)
	return ok && issuedAt <= through
}

// notBefore returns the latest second through which tokens of pubkey in scope are
// revoked, and whether any are.
func (d *denyList) notBefore(scope, pubkey string) (int64, bool) {
	var through int64
	found := false
	for _, k := range [...]scoped{{scope, pubkey}, {scope, All}, {All, All}} {
		if v, ok := d.keys[k]; ok && (!found || v > through) {
			through, found = v, true
		}
	}
	return through, found
}

// latestCovered returns the latest revocation second of the entries whose tokens a
// new revocation of (scope, pubkey) covers, and whether there is any.
func (d *denyList) latestCovered(scope, pubkey string) (int64, bool) {
	var latest int64
	found := false
	for k, v := range d.keys {
		covered := scope == All || k.scope == All || (k.scope == scope && (pubkey == All || k.id == All || k.id == pubkey))
		if covered && (!found || v > latest) {
			latest, found = v, true
		}
	}
	return latest, found
}

func (d *denyList) clone() *denyList {
	if d == nil {
		return &denyList{tokens: map[scoped]int64{}, keys: map[scoped]int64{}}
	}
	return &denyList{tokens: maps.Clone(d.tokens), keys: maps.Clone(d.keys)}
}

func (d *denyList) equal(o *denyList) bool {
	return maps.Equal(d.tokens, o.tokens) && maps.Equal(d.keys, o.keys)
}

// revocations holds the deny-list and what changes it.
type revocations struct {
	mu        sync.Mutex // serializes changes and syncs
	list      atomic.Pointer[denyList]
	records   Records
	listeners []func()
}

type revokedTokenRecord struct {
	Scope     string `json:"scope"`
	TokenID   string `json:"tokenId"`
	ExpiresAt int64  `json:"expiresAt"`
}

type revokedKeysRecord struct {
	Scope     string `json:"scope"`
	PubKey    string `json:"pubkey"`
	RevokedAt int64  `json:"revokedAt"`
}

// UseRecords keeps revocations in recs (the node's records: tenant "") from now on,
// and loads the ones made before, dropping those of tokens that have expired.
func (a *Auth) UseRecords(ctx context.Context, recs Records) error {
	r := &a.revoked
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = recs
	d, err := a.loadRevocations(ctx)
	if err != nil {
		return err
	}
	r.list.Store(d)
	return nil
}

// SyncRevocations reloads the revocations from the records, so that those another
// gateway made apply here too, and tells the OnRevoke listeners when any is new.
func (a *Auth) SyncRevocations(ctx context.Context) error {
	apply, err := a.ReadRevocations(ctx)
	if err != nil {
		return err
	}
	apply()
	return nil
}

// ReadRevocations reads the revocations from the records and returns apply, which
// puts them in force and tells the OnRevoke listeners when any is new. Between the
// two, the caller may apply what it read after the revocations (runtime tenants), so
// that a change another gateway made before a revocation applies here first. apply
// does nothing when a revocation was made here in between: the next sync takes it.
func (a *Auth) ReadRevocations(ctx context.Context) (apply func(), err error) {
	r := &a.revoked
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.records == nil {
		return func() {}, nil
	}
	base := r.list.Load()
	d, err := a.loadRevocations(ctx)
	if err != nil {
		return nil, err
	}
	return func() {
		r.mu.Lock()
		changed := r.list.Load() == base && !d.equal(base.clone())
		if changed {
			r.list.Store(d)
		}
		r.mu.Unlock()
		if changed {
			a.notifyRevoked()
		}
	}, nil
}

// loadRevocations reads every revocation record; r.mu must be held.
func (a *Auth) loadRevocations(ctx context.Context) (*denyList, error) {
	d := (*denyList)(nil).clone()
	now := a.tokens.now().Unix()
	err := eachRecord(ctx, a.revoked.records, recordRevokedToken, func(rec store.Record) error {
		var v revokedTokenRecord
		if json.Unmarshal(rec.Value, &v) != nil || v.TokenID == "" {
			return nil // not ours to judge; a malformed record refuses nothing
		}
		if v.ExpiresAt <= now {
			_, err := a.revoked.records.DeleteRecord(ctx, "", recordRevokedToken, rec.ID)
			return err
		}
		d.tokens[scoped{v.Scope, v.TokenID}] = v.ExpiresAt
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = eachRecord(ctx, a.revoked.records, recordRevokedKeys, func(rec store.Record) error {
		var v revokedKeysRecord
		if json.Unmarshal(rec.Value, &v) == nil && v.Scope != "" && v.PubKey != "" {
			d.keys[scoped{v.Scope, v.PubKey}] = v.RevokedAt
		}
		return nil
	})
	return d, err
}

// eachRecord calls fn for every node record of kind, in pages.
func eachRecord(ctx context.Context, recs Records, kind string, fn func(store.Record) error) error {
	const page = 500
	after := ""
	for {
		list, err := recs.ListRecords(ctx, "", kind, after, page, false)
		if err != nil {
			return err
		}
		for _, rec := range list {
			if err := fn(rec); err != nil {
				return err
			}
		}
		if len(list) < page {
			return nil
		}
		after = list[len(list)-1].ID
	}
}

// OnRevoke registers fn to run after each revocation that applies here (made here or
// found by SyncRevocations), so that connections authenticated with a revoked token
// can be closed (Check tells which). Register listeners before serving.
func (a *Auth) OnRevoke(fn func()) {
	a.revoked.mu.Lock()
	a.revoked.listeners = append(a.revoked.listeners, fn)
	a.revoked.mu.Unlock()
}

func (a *Auth) notifyRevoked() {
	a.revoked.mu.Lock()
	ls := a.revoked.listeners
	a.revoked.mu.Unlock()
	for _, fn := range ls {
		fn()
	}
}

// RevokeToken refuses the token with id tokenID of scope (a tenant key or the node
// key) from now on. expiresAt is when the token expires anyway; the revocation is
// kept until then. Revoking an id twice is harmless.
func (a *Auth) RevokeToken(ctx context.Context, scope, tokenID string, expiresAt time.Time) error {
	if !validTokenID(tokenID) {
		return errs.Param("tokenId", "want %d lowercase hex characters", 2*tokenIDBytes)
	}
	r := &a.revoked
	r.mu.Lock()
	now := a.tokens.now().Unix()
	exp := max(expiresAt.Unix(), now+1)
	if r.records != nil {
		b, _ := json.Marshal(revokedTokenRecord{Scope: scope, TokenID: tokenID, ExpiresAt: exp})
		if err := r.records.PutRecord(ctx, "", recordRevokedToken, scope+"/"+tokenID, b); err != nil {
			r.mu.Unlock()
			return err
		}
	}
	d := r.list.Load().clone()
	for k, e := range d.tokens {
		if e <= now {
			delete(d.tokens, k) // its record goes at the next load
		}
	}
	d.tokens[scoped{scope, tokenID}] = exp
	r.list.Store(d)
	r.mu.Unlock()
	a.notifyRevoked()
	return nil
}

// RevokeKeys refuses every token of pubkey in scope issued until now. pubkey All
// revokes every key of scope; scope All (with pubkey All) revokes every token of the
// node. The key may authenticate again afterwards and gets a token that works.
func (a *Auth) RevokeKeys(ctx context.Context, scope, pubkey string) error {
	if scope == All && pubkey != All {
		return errs.Param("pubkey", "revoking in every scope covers every key")
	}
	r := &a.revoked
	r.mu.Lock()
	d := r.list.Load().clone()
	at := a.tokens.now().Unix()
	// Tokens issued this second after an earlier revocation have IssuedAt one past it;
	// this revocation must cover them too.
	if latest, ok := d.latestCovered(scope, pubkey); ok && latest >= at {
		at = latest + 1
	}
	if r.records != nil {
		b, _ := json.Marshal(revokedKeysRecord{Scope: scope, PubKey: pubkey, RevokedAt: at})
		if err := r.records.PutRecord(ctx, "", recordRevokedKeys, scope+"/"+pubkey, b); err != nil {
			r.mu.Unlock()
			return err
		}
	}
	d.keys[scoped{scope, pubkey}] = at
	if scope == All {
		staleTokens, staleKeys := d.collapse(at)
		if r.records != nil { // superseded: a failed delete only leaves a redundant record
			for _, id := range staleTokens {
				_, _ = r.records.DeleteRecord(ctx, "", recordRevokedToken, id)
			}
			for _, id := range staleKeys {
				_, _ = r.records.DeleteRecord(ctx, "", recordRevokedKeys, id)
			}
		}
	}
	r.list.Store(d)
	r.mu.Unlock()
	a.notifyRevoked()
	return nil
}

// collapse drops every entry that the node-wide revocation through at makes
// redundant and returns the ids of their records.
func (d *denyList) collapse(at int64) (tokens, keys []string) {
	for k := range d.tokens {
		tokens = append(tokens, k.scope+"/"+k.id)
		delete(d.tokens, k)
	}
	for k, v := range d.keys {
		if k != (scoped{All, All}) && v <= at {
			keys = append(keys, k.scope+"/"+k.id)
			delete(d.keys, k)
		}
	}
	return tokens, keys
}

// Check reports whether a principal may still act: errs.InvalidCredentials when its
// token expired or was revoked.
func (a *Auth) Check(pr *Principal) error {
	if pr.Expired(a.tokens.now()) {
		return errTokenExpired
	}
	if a.revoked.list.Load().refuses(pr.Tenant.PubKey, pr.PubKey, pr.TokenID, pr.IssuedAt.Unix()) {
		return errTokenRevoked
	}
	return nil
}

// Expired and revoked tokens, as every transport reports them.
var (
	errTokenExpired = errs.E(errs.InvalidCredentials, "token expired")
	errTokenRevoked = errs.E(errs.InvalidCredentials, "token revoked")
)

// IsRevoked reports whether err is the error of a revoked token.
func IsRevoked(err error) bool { return err == errTokenRevoked }

// minIssued returns the earliest IssuedAt a new token of pubkey in scope may have so
// that no revocation in force covers it.
func (a *Auth) minIssued(scope, pubkey string) int64 {
	d := a.revoked.list.Load()
	if d == nil {
		return 0
	}
	if through, ok := d.notBefore(scope, pubkey); ok {
		return through + 1
	}
	return 0
}

func validTokenID(id string) bool {
	if len(id) != 2*tokenIDBytes {
		return false
	}
	for i := range len(id) {
		c := id[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

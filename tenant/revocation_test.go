package tenant

import (
	"context"
	"testing"
	"time"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
)

// revEnv is an Auth on a fake clock with two tenants and two keys.
type revEnv struct {
	t      *testing.T
	clock  *fakeClock
	auth   *Auth
	ta, tb *Tenant
	alice  *secp256k1.PrivateKey
	bob    *secp256k1.PrivateKey
}

func newRevEnv(t *testing.T, recs Records) *revEnv {
	t.Helper()
	clock := newFakeClock()
	return newRevEnvClock(t, recs, clock)
}

func newRevEnvClock(t *testing.T, recs Records, clock *fakeClock) *revEnv {
	t.Helper()
	a, err := NewAuth(AuthConfig{}, NewTokens(testSecret, clock.Now), nil)
	if err != nil {
		t.Fatal(err)
	}
	if recs != nil {
		if err := a.UseRecords(t.Context(), recs); err != nil {
			t.Fatal(err)
		}
	}
	key := func(b byte) *secp256k1.PrivateKey {
		var s [32]byte
		s[31] = b
		return secp256k1.PrivKeyFromBytes(s[:])
	}
	e := &revEnv{t: t, clock: clock, auth: a, alice: key(1), bob: key(2)}
	e.ta = &Tenant{PubKey: PubKeyHex(key(10).PubKey())}
	e.tb = &Tenant{PubKey: PubKeyHex(key(11).PubKey())}
	return e
}

// login authenticates priv in tenant t and returns its token.
func (e *revEnv) login(t *Tenant, priv *secp256k1.PrivateKey) (string, *Principal) {
	e.t.Helper()
	pub := PubKeyHex(priv.PubKey())
	n, err := e.auth.FetchNonce(e.t.Context(), t, pub)
	if err != nil {
		e.t.Fatal(err)
	}
	pr, tok, err := e.auth.Authenticate(e.t.Context(), t, pub, SignPersonal(priv, []byte(n.Value)), n.Value)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok, pr
}

// valid reports whether token verifies in t.
func (e *revEnv) valid(t *Tenant, token string) bool {
	_, err := e.auth.VerifyToken(e.t.Context(), t, token)
	if err != nil && !errs.Is(err, errs.InvalidCredentials) {
		e.t.Fatalf("VerifyToken: %v", err)
	}
	return err == nil
}

func openRecords(t *testing.T, dir string) *store.Pebble {
	t.Helper()
	s, err := store.OpenPebble(store.PebbleConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRevokeToken(t *testing.T) {
	e := newRevEnv(t, nil)
	tok1, pr1 := e.login(e.ta, e.alice)
	tok2, _ := e.login(e.ta, e.alice)
	calls := 0
	e.auth.OnRevoke(func() { calls++ })
	if err := e.auth.RevokeToken(t.Context(), e.ta.PubKey, pr1.TokenID, pr1.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("OnRevoke listener ran %d times, want 1", calls)
	}
	_, err := e.auth.VerifyToken(t.Context(), e.ta, tok1)
	wantKind(t, err, errs.InvalidCredentials, "token revoked")
	if !IsRevoked(err) {
		t.Error("IsRevoked(revoked token's error) = false")
	}
	if !e.valid(e.ta, tok2) {
		t.Error("another token of the same key is refused")
	}
	if err := e.auth.Check(pr1); !IsRevoked(err) {
		t.Errorf("Check(revoked principal) = %v, want token revoked", err)
	}
	if _, err := e.auth.VerifyAny(t.Context(), tok1); !IsRevoked(err) {
		t.Errorf("VerifyAny(revoked) = %v", err)
	}
}

func TestRevokeTokenIsScoped(t *testing.T) {
	e := newRevEnv(t, nil)
	tok, pr := e.login(e.ta, e.alice)
	// The owner of tenant B names A's token id: it stays valid in A.
	if err := e.auth.RevokeToken(t.Context(), e.tb.PubKey, pr.TokenID, pr.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	if !e.valid(e.ta, tok) {
		t.Fatal("revoking a token id in tenant B refused tenant A's token")
	}
}

func TestRevokeTokenBadID(t *testing.T) {
	e := newRevEnv(t, nil)
	calls := 0
	e.auth.OnRevoke(func() { calls++ })
	for _, id := range []string{"", "abc", "ABCDEF0123456789ABCDEF0123456789", "0123456789abcdef0123456789abcdeg"} {
		err := e.auth.RevokeToken(t.Context(), e.ta.PubKey, id, time.Time{})
		wantKind(t, err, errs.InvalidParams, "tokenId")
	}
	if calls != 0 {
		t.Errorf("refused revocations ran the listener %d times", calls)
	}
}

func TestRevokeKeys(t *testing.T) {
	e := newRevEnv(t, nil)
	aliceA, _ := e.login(e.ta, e.alice)
	bobA, _ := e.login(e.ta, e.bob)
	aliceB, _ := e.login(e.tb, e.alice)
	if err := e.auth.RevokeKeys(t.Context(), e.ta.PubKey, PubKeyHex(e.alice.PubKey())); err != nil {
		t.Fatal(err)
	}
	if e.valid(e.ta, aliceA) {
		t.Error("a revoked key's token still verifies")
	}
	if !e.valid(e.ta, bobA) || !e.valid(e.tb, aliceB) {
		t.Error("revoking alice in A refused bob in A or alice in B")
	}
	// Within the same second, alice authenticates again and that token works...
	again, pr := e.login(e.ta, e.alice)
	if !e.valid(e.ta, again) {
		t.Fatalf("a token issued after the revocation is refused (issued %v)", pr.IssuedAt)
	}
	// ...and a second revocation in the same second covers it.
	if err := e.auth.RevokeKeys(t.Context(), e.ta.PubKey, PubKeyHex(e.alice.PubKey())); err != nil {
		t.Fatal(err)
	}
	if e.valid(e.ta, again) {
		t.Error("a second revocation in the same second missed the token issued between")
	}
	e.clock.Advance(10 * time.Second)
	if later, _ := e.login(e.ta, e.alice); !e.valid(e.ta, later) {
		t.Error("a token issued later is refused")
	}
}

func TestRevokeEveryKeyOfTenant(t *testing.T) {
	e := newRevEnv(t, nil)
	aliceA, _ := e.login(e.ta, e.alice)
	bobA, _ := e.login(e.ta, e.bob)
	aliceB, _ := e.login(e.tb, e.alice)
	if err := e.auth.RevokeKeys(t.Context(), e.ta.PubKey, All); err != nil {
		t.Fatal(err)
	}
	if e.valid(e.ta, aliceA) || e.valid(e.ta, bobA) {
		t.Error("a token of the revoked tenant verifies")
	}
	if !e.valid(e.tb, aliceB) {
		t.Error("another tenant's token is refused")
	}
	// A key revoked alone afterwards in the same second still covers its new tokens.
	tok, _ := e.login(e.ta, e.bob)
	if !e.valid(e.ta, tok) {
		t.Fatal("a new token after the tenant-wide revocation is refused")
	}
	if err := e.auth.RevokeKeys(t.Context(), e.ta.PubKey, PubKeyHex(e.bob.PubKey())); err != nil {
		t.Fatal(err)
	}
	if e.valid(e.ta, tok) {
		t.Error("revoking bob missed a token issued after the tenant-wide revocation")
	}
}

func TestRevokeAllCollapsesRecords(t *testing.T) {
	st := openRecords(t, t.TempDir())
	e := newRevEnv(t, st)
	aliceA, pr := e.login(e.ta, e.alice)
	bobB, _ := e.login(e.tb, e.bob)
	ctx := t.Context()
	if err := e.auth.RevokeToken(ctx, e.ta.PubKey, pr.TokenID, pr.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	if err := e.auth.RevokeKeys(ctx, e.tb.PubKey, All); err != nil {
		t.Fatal(err)
	}
	if err := e.auth.RevokeKeys(ctx, All, PubKeyHex(e.alice.PubKey())); err == nil {
		t.Fatal("RevokeKeys(All, one key): want an error")
	}
	if err := e.auth.RevokeKeys(ctx, All, All); err != nil {
		t.Fatal(err)
	}
	if e.valid(e.ta, aliceA) || e.valid(e.tb, bobB) {
		t.Fatal("a token issued before revoking everything verifies")
	}
	toks, _ := st.ListRecords(ctx, "", recordRevokedToken, "", 10, false)
	keys, _ := st.ListRecords(ctx, "", recordRevokedKeys, "", 10, false)
	if len(toks) != 0 || len(keys) != 1 || keys[0].ID != "*/*" {
		t.Fatalf("after revoking everything: %d token records, key records %+v; want none and */*", len(toks), keys)
	}
	if tok, _ := e.login(e.ta, e.alice); !e.valid(e.ta, tok) {
		t.Error("a token issued after revoking everything is refused")
	}
}

func TestRevocationsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	clock := newFakeClock()
	st := openRecords(t, dir)
	e := newRevEnvClock(t, st, clock)
	tok, pr := e.login(e.ta, e.alice)
	_, prShort := e.login(e.tb, e.bob)
	keyTok, _ := e.login(e.tb, e.alice)
	ctx := t.Context()
	if err := e.auth.RevokeToken(ctx, e.ta.PubKey, pr.TokenID, pr.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	// A revocation of a token that expires in a minute is dropped once it has expired.
	if err := e.auth.RevokeToken(ctx, e.tb.PubKey, prShort.TokenID, clock.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := e.auth.RevokeKeys(ctx, e.tb.PubKey, PubKeyHex(e.alice.PubKey())); err != nil {
		t.Fatal(err)
	}
	// A new Auth over the same records (a restart) refuses the same tokens.
	clock.Advance(2 * time.Minute)
	e2 := newRevEnvClock(t, st, clock)
	e2.ta, e2.tb = e.ta, e.tb
	if e2.valid(e.ta, tok) || e2.valid(e.tb, keyTok) {
		t.Fatal("a revoked token verifies after a restart")
	}
	toks, _ := st.ListRecords(ctx, "", recordRevokedToken, "", 10, false)
	if len(toks) != 1 || toks[0].ID != e.ta.PubKey+"/"+pr.TokenID {
		t.Fatalf("revoked-token records after the restart = %+v, want only the unexpired one", toks)
	}
}

func TestSyncRevocations(t *testing.T) {
	st := openRecords(t, t.TempDir())
	clock := newFakeClock()
	g1 := newRevEnvClock(t, st, clock)
	g2 := newRevEnvClock(t, st, clock) // a second gateway of a fleet: same secret, same records
	g2.ta, g2.tb = g1.ta, g1.tb
	tok, pr := g1.login(g1.ta, g1.alice)
	if !g2.valid(g1.ta, tok) {
		t.Fatal("the other gateway refuses a fresh token")
	}
	notified := 0
	g2.auth.OnRevoke(func() { notified++ })
	if err := g2.auth.SyncRevocations(t.Context()); err != nil || notified != 0 {
		t.Fatalf("sync with nothing new: %v, %d notifications", err, notified)
	}
	if err := g1.auth.RevokeToken(t.Context(), g1.ta.PubKey, pr.TokenID, pr.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	if err := g2.auth.SyncRevocations(t.Context()); err != nil {
		t.Fatal(err)
	}
	if notified != 1 {
		t.Errorf("sync that found a revocation notified %d times, want 1", notified)
	}
	if g2.valid(g1.ta, tok) {
		t.Error("the other gateway accepts a token revoked on the first after a sync")
	}
}

func TestCheckExpired(t *testing.T) {
	e := newRevEnv(t, nil)
	_, pr := e.login(e.ta, e.alice)
	if err := e.auth.Check(pr); err != nil {
		t.Fatalf("Check(fresh) = %v", err)
	}
	e.clock.Advance(e.auth.TokenTTL())
	err := e.auth.Check(pr)
	wantKind(t, err, errs.InvalidCredentials, "token expired")
	if IsRevoked(err) {
		t.Error("an expired token reported as revoked")
	}
}

func TestVerifyAnyScopes(t *testing.T) {
	e := newRevEnv(t, nil)
	tok, pr := e.login(e.ta, e.alice)
	c, err := e.auth.VerifyAny(context.Background(), tok)
	if err != nil || c.Tenant != e.ta.PubKey || c.PubKey != pr.PubKey || c.ID != pr.TokenID {
		t.Fatalf("VerifyAny = %+v, %v", c, err)
	}
	if _, err := e.auth.VerifyAny(context.Background(), tok[:len(tok)-2]+"AA"); err == nil {
		t.Fatal("VerifyAny accepted a tampered token")
	}
	e.clock.Advance(e.auth.TokenTTL())
	_, err = e.auth.VerifyAny(context.Background(), tok)
	wantKind(t, err, errs.InvalidCredentials, "token expired")
}

func TestNodeKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateNodeKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateNodeKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !k1.PubKey().IsEqual(k2.PubKey()) {
		t.Fatal("the node key changed across loads")
	}
	for _, bad := range [][]byte{make([]byte, 31), make([]byte, 32)} {
		d := t.TempDir()
		if err := writeFileAtomic(d, nodeKeyFile, bad); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreateNodeKey(d); err == nil {
			t.Errorf("a %d-byte node key of value zero loaded", len(bad))
		}
	}
}

// TestReadRevocationsKeepsLocalChanges: a revocation made here between reading the
// records and applying them is not lost; the next sync applies what was read.
func TestReadRevocationsKeepsLocalChanges(t *testing.T) {
	st := openRecords(t, t.TempDir())
	clock := newFakeClock()
	here := newRevEnvClock(t, st, clock)
	other := newRevEnvClock(t, st, clock)
	other.ta, other.tb = here.ta, here.tb
	tokHere, prHere := here.login(here.ta, here.alice)
	tokOther, prOther := here.login(here.tb, here.bob)
	if err := other.auth.RevokeToken(t.Context(), here.tb.PubKey, prOther.TokenID, prOther.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	apply, err := here.auth.ReadRevocations(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := here.auth.RevokeToken(t.Context(), here.ta.PubKey, prHere.TokenID, prHere.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	apply()
	if here.valid(here.ta, tokHere) {
		t.Fatal("applying a read from before a local revocation undid it")
	}
	if err := here.auth.SyncRevocations(t.Context()); err != nil {
		t.Fatal(err)
	}
	if here.valid(here.tb, tokOther) {
		t.Fatal("the next sync missed the other gateway's revocation")
	}
}

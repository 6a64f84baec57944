package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/circlegate/circlegate/errs"
)

// PutApp stores blob and app under (app.Tenant, sha256(blob)). It sets app.ID (a
// given ID must match the blob), app.Size and, if zero, app.InstalledAt.
func (p *Pebble) PutApp(ctx context.Context, app App, blob []byte) (App, bool, error) {
	if app.Tenant == "" {
		return App{}, false, errs.Param("tenant", "is empty")
	}
	sum := sha256.Sum256(blob)
	id := hex.EncodeToString(sum[:])
	if app.ID != "" && app.ID != id {
		return App{}, false, errs.Param("appId", "is not the sha256 of the blob")
	}
	if err := p.enter(ctx); err != nil {
		return App{}, false, err
	}
	defer p.exit()
	defer p.locks.lock(appLockName(app.Tenant, id))()
	if old, err := p.getApp(app.Tenant, id); err == nil {
		return old, false, nil
	} else if !errs.Is(err, errs.NotFound) {
		return App{}, false, err
	}
	app.ID, app.Size = id, len(blob)
	if app.InstalledAt.IsZero() {
		app.InstalledAt = time.Now().UTC()
	}
	b := p.db.NewBatch()
	if err := putJSON(b, appKey(app.Tenant, id), app); err != nil {
		b.Close()
		return App{}, false, err
	}
	_ = b.Set(blobKey(app.Tenant, id), blob, nil)
	if err := commit(b); err != nil {
		return App{}, false, err
	}
	return app, true, nil
}

// GetApp returns an app's metadata, or an errs.NotFound error.
func (p *Pebble) GetApp(ctx context.Context, tenant, appID string) (App, error) {
	if err := p.enter(ctx); err != nil {
		return App{}, err
	}
	defer p.exit()
	return p.getApp(tenant, appID)
}

func (p *Pebble) getApp(tenant, appID string) (App, error) {
	v, err := p.appValue(appKey(tenant, appID), appID)
	if err != nil {
		return App{}, err
	}
	var app App
	if err := json.Unmarshal(v, &app); err != nil {
		return App{}, errs.Wrap(errs.Internal, err, "store: decode app %s", appID)
	}
	return app, nil
}

// AppBlob returns an app's wasm bytes, or an errs.NotFound error.
func (p *Pebble) AppBlob(ctx context.Context, tenant, appID string) ([]byte, error) {
	if err := p.enter(ctx); err != nil {
		return nil, err
	}
	defer p.exit()
	return p.appValue(blobKey(tenant, appID), appID)
}

// appValue returns the value under an app's key k, or an errs.NotFound error.
func (p *Pebble) appValue(k []byte, appID string) ([]byte, error) {
	v, ok, err := p.get(k)
	if err == nil && !ok {
		err = errs.E(errs.NotFound, "app %s not found", appID)
	}
	return v, err
}

// ListApps returns a tenant's apps ordered by id.
func (p *Pebble) ListApps(ctx context.Context, tenant string) ([]App, error) {
	if err := p.enter(ctx); err != nil {
		return nil, err
	}
	defer p.exit()
	prefix := key(kindApp, tenant)
	it, err := p.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, errs.Wrap(errs.Internal, err, "store: iterate apps")
	}
	apps := []App{}
	for ok := it.First(); ok && err == nil; ok = it.Next() {
		var app App
		err = json.Unmarshal(it.Value(), &app)
		apps = append(apps, app)
	}
	if err := errors.Join(err, it.Error(), it.Close()); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "store: list apps")
	}
	return apps, nil
}

// DeleteApp removes an app's metadata and blob; an errs.Conflict error while a
// context uses it (a seek into the app's usage index).
func (p *Pebble) DeleteApp(ctx context.Context, tenant, appID string) error {
	if err := p.enter(ctx); err != nil {
		return err
	}
	defer p.exit()
	defer p.locks.lock(appLockName(tenant, appID))()
	if _, err := p.appValue(appKey(tenant, appID), appID); err != nil {
		return err
	}
	users := key(kindUsage, tenant, appID)
	if used, err := p.has(users, prefixEnd(users)); err != nil || used {
		if err == nil {
			err = errs.E(errs.Conflict, "app %s is used by a context", appID)
		}
		return err
	}
	b := p.db.NewBatch()
	_ = b.Delete(appKey(tenant, appID), nil)
	_ = b.Delete(blobKey(tenant, appID), nil)
	return commit(b)
}

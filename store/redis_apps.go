package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/internal/redisx"
)

func (r *Redis) appsKey(tenant string) string        { return r.tenantBase(tenant) + "apps" }
func (r *Redis) blobKey(tenant, appID string) string { return r.tenantBase(tenant) + "blob:" + appID }
func (r *Redis) useKey(tenant, appID string) string  { return r.tenantBase(tenant) + "use:" + appID }
func (r *Redis) tenantCtxKey(tenant string) string   { return r.tenantBase(tenant) + "ctx" }

// checkTenant refuses a tenant whose braces would change the keys' hash tag.
func checkTenant(tenant string) error {
	if strings.ContainsAny(tenant, "{}") {
		return errs.Param("tenant", "must not contain { or }")
	}
	return nil
}

// PutApp stores blob and app under (app.Tenant, sha256(blob)) in one script; the
// same blob again returns the stored metadata and created=false.
func (r *Redis) PutApp(ctx context.Context, app App, blob []byte) (App, bool, error) {
	if app.Tenant == "" {
		return App{}, false, errs.Param("tenant", "is empty")
	}
	if err := checkTenant(app.Tenant); err != nil {
		return App{}, false, err
	}
	sum := sha256.Sum256(blob)
	id := hex.EncodeToString(sum[:])
	if app.ID != "" && app.ID != id {
		return App{}, false, errs.Param("appId", "is not the sha256 of the blob")
	}
	if err := r.enter(ctx); err != nil {
		return App{}, false, err
	}
	app.ID, app.Size = id, len(blob)
	if app.InstalledAt.IsZero() {
		app.InstalledAt = time.Now().UTC()
	}
	meta, err := json.Marshal(app)
	if err != nil {
		return App{}, false, errs.Wrap(errs.Internal, err, "store: encode app")
	}
	old, err := r.run(ctx, scripts.putApp, "put app", []string{r.appsKey(app.Tenant), r.blobKey(app.Tenant, id)}, id, meta, blob)
	if err != nil || old == nil {
		return app, err == nil, err
	}
	var stored App
	if err := json.Unmarshal([]byte(old.(string)), &stored); err != nil {
		return App{}, false, errs.Wrap(errs.Internal, err, "store: decode app %s", id)
	}
	return stored, false, nil
}

// GetApp returns an app's metadata, or an errs.NotFound error.
func (r *Redis) GetApp(ctx context.Context, tenant, appID string) (App, error) {
	if err := r.enter(ctx); err != nil {
		return App{}, err
	}
	v, err := r.rdb.HGet(ctx, r.appsKey(tenant), appID).Result()
	if errors.Is(err, redis.Nil) {
		return App{}, errs.E(errs.NotFound, "app %s not found", appID)
	}
	if err != nil {
		return App{}, redisx.Err(err, "get app")
	}
	var app App
	if err := json.Unmarshal([]byte(v), &app); err != nil {
		return App{}, errs.Wrap(errs.Internal, err, "store: decode app %s", appID)
	}
	return app, nil
}

// AppBlob returns an app's wasm bytes, or an errs.NotFound error.
func (r *Redis) AppBlob(ctx context.Context, tenant, appID string) ([]byte, error) {
	if err := r.enter(ctx); err != nil {
		return nil, err
	}
	b, err := r.rdb.Get(ctx, r.blobKey(tenant, appID)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, errs.E(errs.NotFound, "app %s not found", appID)
	}
	return b, redisx.Err(err, "get app blob")
}

// ListApps returns a tenant's apps ordered by id.
func (r *Redis) ListApps(ctx context.Context, tenant string) ([]App, error) {
	if err := r.enter(ctx); err != nil {
		return nil, err
	}
	all, err := r.rdb.HGetAll(ctx, r.appsKey(tenant)).Result()
	if err != nil {
		return nil, redisx.Err(err, "list apps")
	}
	apps := make([]App, 0, len(all))
	for id, v := range all {
		var app App
		if err := json.Unmarshal([]byte(v), &app); err != nil {
			return nil, errs.Wrap(errs.Internal, err, "store: decode app %s", id)
		}
		apps = append(apps, app)
	}
	slices.SortFunc(apps, func(a, b App) int { return strings.Compare(a.ID, b.ID) })
	return apps, nil
}

// DeleteApp removes an app; an errs.Conflict error while a context uses it. The
// app's context set may name contexts whose deletion did not finish its second
// step (DeleteContext): those whose head is gone are dropped from it first.
func (r *Redis) DeleteApp(ctx context.Context, tenant, appID string) error {
	if err := r.enter(ctx); err != nil {
		return err
	}
	keys := []string{r.appsKey(tenant), r.blobKey(tenant, appID), r.useKey(tenant, appID)}
	args := []any{appID}
	for range 64 {
		v, err := r.run(ctx, scripts.delApp, "delete app", keys, args...)
		if err != nil {
			return err
		}
		switch v := v.(type) {
		case string:
			if v == "notfound" {
				return errs.E(errs.NotFound, "app %s not found", appID)
			}
			return nil
		case []any:
			gone, err := r.missingHeads(ctx, v)
			if err != nil {
				return err
			}
			if len(gone) < len(v) {
				return errs.E(errs.Conflict, "app %s is used by a context", appID)
			}
			args = append([]any{appID}, gone...)
		}
	}
	return errs.E(errs.Internal, "store: delete app %s: too many stale context entries", appID)
}

// missingHeads returns those of ids whose context head does not exist.
func (r *Redis) missingHeads(ctx context.Context, ids []any) ([]any, error) {
	pipe := r.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(ids))
	for i, id := range ids {
		s, _ := id.(string)
		cmds[i] = pipe.Exists(ctx, r.ctxKeys(s).head)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, redisx.Err(err, "check contexts")
	}
	var gone []any
	for i, c := range cmds {
		if c.Val() == 0 {
			gone = append(gone, ids[i])
		}
	}
	return gone, nil
}

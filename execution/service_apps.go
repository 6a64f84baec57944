package execution

import (
	"context"
	"crypto/sha256"
	"encoding/hex"

	"github.com/circlegate/circlegate/errs"
	"github.com/circlegate/circlegate/store"
)

// InstallApp validates and stores a module for a tenant (owner only). The same bytes
// installed again return the same app.
func (s *Service) InstallApp(ctx context.Context, tenant string, c Caller, wasm []byte, name, version string) (store.App, error) {
	if err := requireOwner(c); err != nil {
		return store.App{}, err
	}
	if len(wasm) == 0 {
		return store.App{}, errs.Param("wasm", "empty module")
	}
	if len(wasm) > s.cfg.MaxAppBytes {
		return store.App{}, errs.Param("wasm", "module of %d bytes exceeds max_app_bytes (%d)", len(wasm), s.cfg.MaxAppBytes)
	}
	if len(name) > 128 || len(version) > 64 {
		return store.App{}, errs.Param("name", "name is at most 128 bytes and version 64")
	}
	if err := s.engine.Validate(ctx, wasm); err != nil {
		return store.App{}, err
	}
	sum := sha256.Sum256(wasm)
	app := store.App{
		ID: hex.EncodeToString(sum[:]), Tenant: tenant, Name: name, Version: version,
		Size: len(wasm), InstalledAt: s.now().UTC(), InstalledBy: c.PubKey,
	}
	stored, _, err := s.store.PutApp(ctx, app, wasm)
	return stored, err
}

// ListApps returns a tenant's apps.
func (s *Service) ListApps(ctx context.Context, tenant string, _ Caller) ([]store.App, error) {
	return s.store.ListApps(ctx, tenant)
}

// GetApp returns one app's metadata.
func (s *Service) GetApp(ctx context.Context, tenant string, _ Caller, appID string) (store.App, error) {
	return s.store.GetApp(ctx, tenant, appID)
}

// UninstallApp removes an app (owner only); refused while a context uses it.
func (s *Service) UninstallApp(ctx context.Context, tenant string, c Caller, appID string) error {
	if err := requireOwner(c); err != nil {
		return err
	}
	if err := s.store.DeleteApp(ctx, tenant, appID); err != nil {
		return err
	}
	s.engine.Evict(tenant, appID)
	return nil
}

package webhooks

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/circlegate/circlegate/errs"
)

// Record kinds in the store (store.PutRecord), per tenant.
const (
	kindSecret   = "webhook.secret"
	kindRoute    = "webhook.route"
	kindDelivery = "webhook.delivery"
)

// SecretInfo describes a secret without its value: what webhook.secret.add and
// webhook.secret.list return.
type SecretInfo struct {
	ID       string   `json:"secretId"`
	Provider Provider `json:"provider"`
	Name     string   `json:"name,omitempty"`
	// Source is "api" (webhook.secret.add) or "config" (the config file).
	Source    string    `json:"source"`
	CreatedAt time.Time `json:"createdAt"`
}

// secretRecord is a stored secret. Its value never leaves this package except into a
// verifier.
type secretRecord struct {
	SecretInfo
	Value string `json:"value"`
}

// configSecretPrefix starts the ids of secrets from the config file: config-0, ...
const configSecretPrefix = "config-"

// maxSecretBytes bounds a secret.
const maxSecretBytes = 1024

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckName checks the endpoint name of a provider: required for standard (it is the
// last path segment of /webhooks/standard/<tenant>/<name>), empty for the others.
func CheckName(p Provider, name string) error {
	switch {
	case p == Standard && name == "":
		return errs.Param("name", "is required for provider standard: it names the endpoint /webhooks/standard/<tenant>/<name>")
	case p != Standard && name != "":
		return errs.Param("name", "must be empty for provider %s, which has one endpoint per tenant", p)
	case p == Standard && !namePattern.MatchString(name):
		return errs.Param("name", "must be 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

// CheckSecret checks a secret for a provider. The error names the param ("provider",
// "name" or "secret") and never holds the secret.
func CheckSecret(p Provider, name, secret string) error {
	if _, err := ParseProvider(string(p)); err != nil {
		return err
	}
	if err := CheckName(p, name); err != nil {
		return err
	}
	switch {
	case secret == "":
		return errs.Param("secret", "must not be empty")
	case len(secret) > maxSecretBytes:
		return errs.Param("secret", "must be at most %d bytes", maxSecretBytes)
	case strings.TrimSpace(secret) != secret:
		return errs.Param("secret", "must not start or end with white space")
	case p == Standard:
		_, err := decodeStandardSecret(secret)
		return err
	}
	return nil
}

// AddConfigSecret adds a secret from the config file to tenant (a normalized key). It
// is listed with source "config" and id config-<n>, and cannot be removed by a method.
// Call it before serving.
func (s *Service) AddConfigSecret(tenant string, p Provider, name, secret string) error {
	if err := CheckSecret(p, name, secret); err != nil {
		return err
	}
	list := s.static[tenant]
	rec := secretRecord{SecretInfo: SecretInfo{
		ID: configSecretPrefix + strconv.Itoa(len(list)), Provider: p, Name: name, Source: "config", CreatedAt: s.started,
	}, Value: secret}
	s.static[tenant] = append(list, rec)
	return nil
}

// AddSecret stores a new secret for (provider, name) of tenant. Up to max_secrets per
// tenant; past it, -32007.
func (s *Service) AddSecret(ctx context.Context, tenant string, p Provider, name, secret string) (SecretInfo, error) {
	if err := CheckSecret(p, name, secret); err != nil {
		return SecretInfo{}, err
	}
	recs, err := s.store.ListRecords(ctx, tenant, kindSecret, "", s.cfg.MaxSecrets, false)
	if err != nil {
		return SecretInfo{}, err
	}
	if len(recs) >= s.cfg.MaxSecrets {
		return SecretInfo{}, errs.E(errs.Conflict, "the tenant has %d webhook secrets, the most allowed (webhooks.max_secrets): remove one first", len(recs))
	}
	now := s.now().UTC()
	rec := secretRecord{SecretInfo: SecretInfo{ID: newTimeID(now), Provider: p, Name: name, Source: "api", CreatedAt: now}, Value: secret}
	b, err := json.Marshal(rec)
	if err != nil {
		return SecretInfo{}, err
	}
	if err := s.store.PutRecord(ctx, tenant, kindSecret, rec.ID, b); err != nil {
		return SecretInfo{}, err
	}
	s.cache.drop(tenant)
	s.log.Info("webhook secret added", "tenant", tenant, "provider", p, "name", name, "secret_id", rec.ID)
	return rec.SecretInfo, nil
}

// RemoveSecret deletes a secret added with AddSecret.
func (s *Service) RemoveSecret(ctx context.Context, tenant, id string) error {
	if strings.HasPrefix(id, configSecretPrefix) {
		return errs.Param("secretId", "%s comes from the config file: remove it there", id)
	}
	if !validTimeID(id) {
		return errs.Param("secretId", "not a secret id")
	}
	existed, err := s.store.DeleteRecord(ctx, tenant, kindSecret, id)
	if err != nil {
		return err
	}
	if !existed {
		return errs.E(errs.NotFound, "no webhook secret %s", id)
	}
	s.cache.drop(tenant)
	s.log.Info("webhook secret removed", "tenant", tenant, "secret_id", id)
	return nil
}

// ListSecrets describes the tenant's secrets, those of the config file first, then
// the others oldest first. Values are never returned.
func (s *Service) ListSecrets(ctx context.Context, tenant string) ([]SecretInfo, error) {
	recs, err := s.secrets(ctx, tenant)
	if err != nil {
		return nil, err
	}
	out := make([]SecretInfo, len(recs))
	for i, r := range recs {
		out[i] = r.SecretInfo
	}
	return out, nil
}

// secrets returns every secret of a tenant with its value.
func (s *Service) secrets(ctx context.Context, tenant string) ([]secretRecord, error) {
	out := slices.Clone(s.static[tenant])
	recs, err := s.store.ListRecords(ctx, tenant, kindSecret, "", s.cfg.MaxSecrets, false)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		var sr secretRecord
		if err := json.Unmarshal(r.Value, &sr); err != nil {
			s.log.Error("webhook secret record unreadable", "tenant", tenant, "secret_id", r.ID)
			continue
		}
		out = append(out, sr)
	}
	return out, nil
}

// secretValues returns the values of the secrets for (provider, name).
func secretValues(recs []secretRecord, p Provider, name string) []string {
	var out []string
	for _, r := range recs {
		if r.Provider == p && r.Name == name {
			out = append(out, r.Value)
		}
	}
	return out
}

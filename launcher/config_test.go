package launcher

import (
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

// TestExampleConfigDocumentsEveryKey fails when a config field is added without
// being documented in configs/circlegate.toml.
func TestExampleConfigDocumentsEveryKey(t *testing.T) {
	var cfg Config
	md, err := toml.DecodeFile("../configs/circlegate.toml", &cfg)
	if err != nil {
		t.Fatal(err)
	}
	defined := make(map[string]bool)
	for _, k := range md.Keys() {
		defined[k.String()] = true // array tables too: "tenants.webhook_secrets.provider"
	}
	for _, key := range tomlKeys(reflect.TypeOf(Config{}), nil) {
		if !defined[strings.Join(key, ".")] {
			t.Errorf("configs/circlegate.toml does not document %s", strings.Join(key, "."))
		}
	}
}

// tomlKeys lists the key paths of every leaf field of a config struct. Slices of
// structs ([[tenants]], [[tenants.webhook_secrets]]) are documented by an example
// entry that sets every key.
func tomlKeys(typ reflect.Type, prefix []string) [][]string {
	var out [][]string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := strings.Split(f.Tag.Get("toml"), ",")[0]
		if !f.IsExported() || name == "" || name == "-" {
			continue
		}
		path := append(append([]string{}, prefix...), name)
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type.String() != "time.Time":
			out = append(out, tomlKeys(f.Type, path)...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			out = append(out, tomlKeys(f.Type.Elem(), path)...)
		default:
			out = append(out, path)
		}
	}
	return out
}

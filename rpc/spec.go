package rpc

import (
	"encoding/json"
	"fmt"
)

// Spec is the part of an OpenRPC document the dispatcher uses: each method's params,
// in order, and which are required.
type Spec struct {
	Methods map[string]*MethodSpec
}

// MethodSpec describes one documented method.
type MethodSpec struct {
	Name   string
	Auth   string // "public" or "authenticated" (x-auth)
	Params []ParamSpec
	Errors []string // names of components.errors the method lists
}

// ParamSpec is one documented param.
type ParamSpec struct {
	Name     string
	Required bool
}

type openrpcDoc struct {
	Methods []struct {
		Name   string `json:"name"`
		Auth   string `json:"x-auth"`
		Params []struct {
			Name     string `json:"name"`
			Required bool   `json:"required"`
		} `json:"params"`
		Errors []struct {
			Ref string `json:"$ref"`
		} `json:"errors"`
	} `json:"methods"`
	Components struct {
		Errors map[string]struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	} `json:"components"`
}

// ParseSpec reads the methods of an OpenRPC document.
func ParseSpec(doc []byte) (*Spec, error) {
	var d openrpcDoc
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("openrpc: %w", err)
	}
	s := &Spec{Methods: make(map[string]*MethodSpec, len(d.Methods))}
	for _, m := range d.Methods {
		if _, dup := s.Methods[m.Name]; dup {
			return nil, fmt.Errorf("openrpc: method %q documented twice", m.Name)
		}
		if len(m.Params) > 64 {
			return nil, fmt.Errorf("openrpc: method %q has more than 64 params", m.Name)
		}
		ms := &MethodSpec{Name: m.Name, Auth: m.Auth}
		for _, p := range m.Params {
			ms.Params = append(ms.Params, ParamSpec{Name: p.Name, Required: p.Required})
		}
		for _, e := range m.Errors {
			const prefix = "#/components/errors/"
			if len(e.Ref) <= len(prefix) || e.Ref[:len(prefix)] != prefix {
				return nil, fmt.Errorf("openrpc: method %q: error ref %q", m.Name, e.Ref)
			}
			ms.Errors = append(ms.Errors, e.Ref[len(prefix):])
		}
		s.Methods[m.Name] = ms
	}
	return s, nil
}

// normalizeParams turns params by position into params by name and checks names and
// required params against the spec. It returns an object (or nil for no params).
func (m *MethodSpec) normalizeParams(raw json.RawMessage) (json.RawMessage, *Error) {
	if len(raw) == 0 {
		return nil, m.checkRequired(nil)
	}
	if raw[0] == '[' {
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return nil, paramError("", "params must be a JSON array")
		}
		if len(items) > len(m.Params) {
			return nil, paramError("", fmt.Sprintf("%s takes at most %d params, got %d", m.Name, len(m.Params), len(items)))
		}
		obj := make(map[string]json.RawMessage, len(items))
		for i, it := range items {
			obj[m.Params[i].Name] = it
		}
		if e := m.checkRequired(obj); e != nil {
			return nil, e
		}
		out, _ := json.Marshal(obj)
		return out, nil
	}
	// An object: check names and required params without decoding the values.
	var seen uint64 // bit i: param i present and not null
	var unknown string
	err := members(raw, func(k, v []byte) error {
		name, _ := unquote(k)
		i := m.paramIndex(name)
		if i < 0 {
			unknown = name
			return errScan
		}
		if i < 64 && string(v) != "null" {
			seen |= 1 << i
		}
		return nil
	})
	if unknown != "" {
		return nil, paramError(unknown, "unknown param "+unknown)
	}
	if err != nil {
		return nil, paramError("", "params must be a JSON object")
	}
	for i, p := range m.Params {
		if p.Required && i < 64 && seen&(1<<i) == 0 {
			return nil, paramError(p.Name, "missing param "+p.Name)
		}
	}
	return raw, nil
}

func (m *MethodSpec) paramIndex(name string) int {
	for i, p := range m.Params {
		if p.Name == name {
			return i
		}
	}
	return -1
}

func (m *MethodSpec) checkRequired(obj map[string]json.RawMessage) *Error {
	for _, p := range m.Params {
		if !p.Required {
			continue
		}
		if v, ok := obj[p.Name]; !ok || string(v) == "null" {
			return paramError(p.Name, "missing param "+p.Name)
		}
	}
	return nil
}

func paramError(name, msg string) *Error {
	e := &Error{Code: CodeInvalidParams, Message: "invalid params: " + msg}
	if name != "" {
		e.Data = map[string]string{"param": name}
	}
	return e
}

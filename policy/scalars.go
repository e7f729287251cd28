package policy

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	yamlv2 "go.yaml.in/yaml/v2"
)

// checkStringScalars refuses a manifest in which YAML gives a boolean, a
// number or null where t (the Go type the manifest decodes into) wants a
// string: a struct field, a map key or value, or a list element of string
// kind. sigs.k8s.io/yaml reads YAML with YAML 1.1's types (unquoted y, yes,
// on, off are booleans; 0x1F, 0o17, 1e3, 1_000 numbers; ~ null) and then
// turns such a value into a string where the target is one: unquoted
// `namespace: y` became namespace "true", a label value 0x1F became "31",
// ~ became "". Kubernetes' API server refuses such manifests; so does
// weft, naming the field and asking for quotes. The tree is read with the
// same YAML library and resolution sigs.k8s.io/yaml uses, so what is
// refused here is exactly what it would have converted. A document that
// does not decode is left to the strict decode that follows.
func checkStringScalars(doc []byte, t reflect.Type) error {
	var tree any
	if err := yamlv2.Unmarshal(doc, &tree); err != nil {
		return nil
	}
	var errs []string
	walkScalars(tree, t, "", &errs)
	if len(errs) == 0 {
		return nil
	}
	sort.Strings(errs)
	if len(errs) > 5 {
		errs = append(errs[:5], fmt.Sprintf("and %d more", len(errs)-5))
	}
	return fmt.Errorf("%s", strings.Join(errs, "; "))
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// walkScalars checks v, found at path, against the Go type t.
func walkScalars(v any, t reflect.Type, path string, errs *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	pt := reflect.PointerTo(t)
	if pt.Implements(jsonUnmarshaler) || pt.Implements(textUnmarshaler) {
		return // its own rules (an int-or-string port, a timestamp)
	}
	switch t.Kind() {
	case reflect.String:
		if _, ok := v.(string); !ok {
			*errs = append(*errs, notAString(path, v))
		}
	case reflect.Struct:
		m, ok := v.(map[any]any)
		if !ok {
			return
		}
		fields := jsonFields(t)
		for k, val := range m {
			name, ok := k.(string)
			if !ok {
				*errs = append(*errs, notAStringKey(path, k))
				continue
			}
			if ft, ok := fields[name]; ok {
				walkScalars(val, ft, join(path, name), errs)
			}
		}
	case reflect.Map:
		m, ok := v.(map[any]any)
		if !ok {
			return
		}
		for k, val := range m {
			name, ok := k.(string)
			if !ok {
				if t.Key().Kind() == reflect.String {
					*errs = append(*errs, notAStringKey(path, k))
				}
				continue
			}
			walkScalars(val, t.Elem(), path+"["+strconv.Quote(name)+"]", errs)
		}
	case reflect.Slice, reflect.Array:
		list, ok := v.([]any)
		if !ok {
			return
		}
		for i, item := range list {
			walkScalars(item, t.Elem(), path+"["+strconv.Itoa(i)+"]", errs)
		}
	}
}

// jsonFields maps the JSON names of t's fields (inline structs included)
// to their types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && (name == "" || strings.Contains(opts, "inline")) {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFields(ft) {
					out[k] = v
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// yamlReading says what YAML made of an unquoted scalar.
func yamlReading(v any) string {
	switch x := v.(type) {
	case nil:
		return "null (unquoted ~, null or no value)"
	case bool:
		return fmt.Sprintf("the boolean %t (unquoted y, yes, on, true, n, no, off, false are booleans)", x)
	case int, int64, uint64, float64:
		return fmt.Sprintf("the number %v (unquoted digits, 0x.., 0o.., 1e3 are numbers)", x)
	}
	return fmt.Sprintf("a %T", v)
}

func notAString(path string, v any) string {
	if _, ok := v.(map[any]any); ok {
		return path + ": want a string, got a mapping"
	}
	if _, ok := v.([]any); ok {
		return path + ": want a string, got a list"
	}
	return fmt.Sprintf("%s: YAML reads this value as %s, not a string: quote it", path, yamlReading(v))
}

func notAStringKey(path string, k any) string {
	where := path
	if where == "" {
		where = "top level"
	}
	return fmt.Sprintf("%s: YAML reads a key as %s, not a string: quote it", where, yamlReading(k))
}

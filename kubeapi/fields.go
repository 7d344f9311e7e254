package kubeapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/managedfields"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/typed"
	"sigs.k8s.io/structured-merge-diff/v6/value"

	"github.com/mycelfabric/mycel/workloadplane/objects"
	"github.com/mycelfabric/mycel/workloadplane/store"
)

// Fields splits stored documents into the parts that merge on their own
// (store.Fields), typed as server-side apply types them: by the served
// OpenAPI models with structured-merge-diff, so a list is merged per
// element exactly where Kubernetes declares it a map (x-kubernetes-list-
// type map and its keys: containers by name, ports by port and protocol,
// conditions by type) or a set (finalizers), and atomic elsewhere. A part
// is a leaf field, a map key, or a whole element of such a list.
func (s *Server) Fields() store.Fields { return storeFields{s.fields} }

type storeFields struct{ f *fieldManagers }

// typed types a stored document by its apiVersion and kind.
func (s storeFields) typed(doc []byte) (*typed.TypedValue, error) {
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(doc); err != nil {
		return nil, err
	}
	res, err := s.f.objs.ResourceOf(u)
	if err != nil {
		return nil, err
	}
	tc, err := s.f.converter(res)
	if err != nil {
		return nil, err
	}
	return tc.ObjectToTyped(u, typed.AllowDuplicates)
}

// Diff names the parts in which old and new differ: every changed path,
// cut at the first list element (an element is one part), without the
// containers of other changed paths.
func (s storeFields) Diff(old, new []byte) ([]string, error) {
	a, err := s.typed(old)
	if err != nil {
		return nil, err
	}
	b, err := s.typed(new)
	if err != nil {
		return nil, err
	}
	c, err := a.Compare(b)
	if err != nil {
		return nil, err
	}
	cut := map[string]fieldpath.Path{}
	c.Added.Union(c.Removed).Union(c.Modified).Iterate(func(p fieldpath.Path) {
		for i, pe := range p {
			if pe.FieldName == nil {
				p = p[:i+1]
				break
			}
		}
		if name, err := partName(p); err == nil {
			cut[name] = p.Copy()
		}
	})
	var out []string
	for name := range cut {
		inner := false
		within := name[:len(name)-1] + ","
		for other := range cut {
			inner = inner || (len(other) > len(within) && other[:len(within)] == within)
		}
		if !inner {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

// partName is the JSON array of p's serialized elements.
func partName(p fieldpath.Path) (string, error) {
	els := make([]string, len(p))
	for i, pe := range p {
		s, err := fieldpath.SerializePathElement(pe)
		if err != nil {
			return "", err
		}
		els[i] = s
	}
	b, err := json.Marshal(els)
	return string(b), err
}

func parsePart(name string) (fieldpath.Path, error) {
	var els []string
	if err := json.Unmarshal([]byte(name), &els); err != nil {
		return nil, err
	}
	p := make(fieldpath.Path, len(els))
	for i, s := range els {
		pe, err := fieldpath.DeserializePathElement(s)
		if err != nil {
			return nil, err
		}
		p[i] = pe
	}
	return p, nil
}

// Take returns dst with the named parts as src has them.
func (s storeFields) Take(dst, src []byte, parts []string) ([]byte, error) {
	var d, from map[string]any
	for doc, v := range map[*map[string]any][]byte{&d: dst, &from: src} {
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.UseNumber()
		if err := dec.Decode(doc); err != nil {
			return nil, err
		}
	}
	for _, name := range parts {
		p, err := parsePart(name)
		if err != nil || len(p) == 0 {
			return nil, fmt.Errorf("part %s: %v", name, err)
		}
		if v, ok := lookup(from, p); ok {
			if err := put(d, p, v); err != nil {
				return nil, fmt.Errorf("part %s: %w", name, err)
			}
		} else {
			remove(d, p)
		}
	}
	return json.Marshal(d)
}

// lookup finds the value at p in doc.
func lookup(doc any, p fieldpath.Path) (any, bool) {
	cur := doc
	for _, pe := range p {
		switch {
		case pe.FieldName != nil:
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, false
			}
			if cur, ok = m[*pe.FieldName]; !ok {
				return nil, false
			}
		default:
			l, ok := cur.([]any)
			if !ok {
				return nil, false
			}
			i := slices.IndexFunc(l, func(e any) bool { return matches(pe, e) })
			if i < 0 {
				return nil, false
			}
			cur = l[i]
		}
	}
	return cur, true
}

// put sets the value at p in doc, making the maps on the way; a list
// element not in the list is appended.
func put(doc map[string]any, p fieldpath.Path, v any) error {
	m := doc
	for i, pe := range p {
		if pe.FieldName == nil {
			return fmt.Errorf("element %s not under a field", pe)
		}
		last := i == len(p)-1
		if last {
			m[*pe.FieldName] = v
			return nil
		}
		if next := p[i+1]; next.FieldName == nil {
			// p ends in a list element (Diff cuts there).
			l, _ := m[*pe.FieldName].([]any)
			if j := slices.IndexFunc(l, func(e any) bool { return matches(next, e) }); j >= 0 {
				l[j] = v
			} else {
				l = append(l, v)
			}
			m[*pe.FieldName] = l
			return nil
		}
		child, ok := m[*pe.FieldName].(map[string]any)
		if !ok {
			child = map[string]any{}
			m[*pe.FieldName] = child
		}
		m = child
	}
	return nil
}

// remove deletes the value at p from doc, if there is one.
func remove(doc map[string]any, p fieldpath.Path) {
	m := doc
	for i, pe := range p {
		if pe.FieldName == nil {
			return
		}
		if i == len(p)-1 {
			delete(m, *pe.FieldName)
			return
		}
		if next := p[i+1]; next.FieldName == nil {
			l, _ := m[*pe.FieldName].([]any)
			m[*pe.FieldName] = slices.DeleteFunc(l, func(e any) bool { return matches(next, e) })
			return
		}
		child, ok := m[*pe.FieldName].(map[string]any)
		if !ok {
			return
		}
		m = child
	}
}

// matches reports whether list element e is the one pe names: by its key
// fields, or, in a set, by its value.
func matches(pe fieldpath.PathElement, e any) bool {
	switch {
	case pe.Key != nil:
		m, ok := e.(map[string]any)
		if !ok {
			return false
		}
		for _, f := range *pe.Key {
			v, ok := m[f.Name]
			if !ok || !value.Equals(value.NewValueInterface(normalize(v)), f.Value) {
				return false
			}
		}
		return true
	case pe.Value != nil:
		return value.Equals(value.NewValueInterface(normalize(e)), *pe.Value)
	case pe.Index != nil:
		return false // atomic lists are one part; Diff never names an index
	}
	return false
}

// normalize turns json.Numbers into the int64 or float64 that
// structured-merge-diff compares.
func normalize(v any) any {
	if n, ok := v.(json.Number); ok {
		if i, err := n.Int64(); err == nil {
			return i
		}
		f, _ := n.Float64()
		return f
	}
	return v
}

// converter types the objects of gvk: the built-in kinds by the served
// models, custom ones by their CRD's schema at the registry's generation.
// (Not cached yet: a custom kind's converter is rebuilt per call.)
func (f *fieldManagers) converter(res *objects.Resource) (managedfields.TypeConverter, error) {
	if !res.Custom() {
		return f.tc, nil
	}
	crds, _ := f.objs.ServedCRDs()
	return crdTypeConverter(crds, res.GVK())
}

package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sort"
	"strings"
)

// Fields splits documents into the parts that merge on their own: per key
// of a map (labels, annotations), per element of a list Kubernetes treats
// as a map or a set (containers by name, conditions by type, finalizers),
// per path elsewhere. The store knows no schema; the API layer supplies
// one (kubeapi.Fields, from the types' OpenAPI schemas by
// structured-merge-diff). A part is named by the JSON array of its path's
// elements (["f:metadata","f:labels","f:app"]); a part contains those whose
// arrays extend its own.
type Fields interface {
	// Diff names the parts in which two versions of a document differ
	// (added, removed or changed), or fails for a document it cannot type:
	// such writes merge whole.
	Diff(old, new []byte) ([]string, error)
	// Take returns dst with the named parts as src has them: a part src
	// lacks is removed from dst.
	Take(dst, src []byte, parts []string) ([]byte, error)
}

// partStamp is when part p of r was last written: its own stamp if any
// write since the create changed it, else the create's.
func (r Record) partStamp(p string) Timestamp {
	if t, ok := r.Fields[p]; ok {
		return t
	}
	return r.Born
}

// tracked reports whether r's writes since its create are all recorded
// per part, so that it can merge per part: it was never changed, or every
// change was stamped in Fields.
func (r Record) tracked() bool {
	return r.Born != (Timestamp{}) && (r.Fields != nil || (r.Stamp == r.Born && r.StatusStamp == r.Born))
}

// newerParts lists the parts a holds newer than b, sorted.
func newerParts(a, b Record) []string {
	var out []string
	for p, t := range a.Fields {
		if b.partStamp(p).Less(t) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// leaves drops from parts those that contain another part either record
// stamped (a map set to {} once and given keys since): the keys merge on
// their own, and taking the container whole would undo them.
func leaves(parts []string, a, b Record) []string {
	out := parts[:0]
	for _, p := range parts {
		inner := false
		within := strings.TrimSuffix(p, "]") + ","
		for _, f := range []map[string]Timestamp{a.Fields, b.Fields} {
			for q := range f {
				inner = inner || strings.HasPrefix(q, within)
			}
		}
		if !inner {
			out = append(out, p)
		}
	}
	return out
}

// mergeParts merges two live records of one incarnation that both track
// their parts: each part as the record that wrote it last has it. The
// document of the record with the newer version is the base, so the
// result does not depend on which replica merges; ok is false when the
// documents cannot be merged per part.
func mergeParts(f Fields, cur, in Record) (Record, bool) {
	base, other := cur, in
	if cur.version().Less(in.version()) {
		base, other = in, cur
	}
	fields := make(map[string]Timestamp, len(base.Fields)+len(other.Fields))
	for _, r := range []Record{base, other} {
		for p, t := range r.Fields {
			if u, ok := fields[p]; !ok || u.Less(t) {
				fields[p] = t
			}
		}
	}
	out := Record{Key: cur.Key, Born: cur.Born, Fields: fields, Value: base.Value,
		Stamp: maxStamp(cur.Stamp, in.Stamp), StatusStamp: maxStamp(cur.StatusStamp, in.StatusStamp)}
	if take := leaves(newerParts(other, base), base, other); len(take) > 0 {
		v, err := f.Take(base.Value, other.Value, take)
		if err != nil {
			return Record{}, false
		}
		out.Value = v
	}
	return out, true
}

func maxStamp(a, b Timestamp) Timestamp {
	if a.Less(b) {
		return b
	}
	return a
}

// fieldsSum summarizes a record's part stamps for anti-entropy: replicas
// whose records have the same stamps but different part stamps (each
// merged the other's write of a different part) exchange them.
func fieldsSum(fields map[string]Timestamp) string {
	if len(fields) == 0 {
		return ""
	}
	b, _ := json.Marshal(fields) // keys sorted
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

// partStamps returns the part stamps of a local write of value over the
// live record cur: cur's, and now for every part the write changed. A
// record that does not track its parts, or a document Fields cannot type,
// gets none: it merges whole.
func (s *Store) partStamps(cur Record, value []byte, now Timestamp) map[string]Timestamp {
	if s.fields == nil || !cur.tracked() {
		return nil
	}
	parts, err := s.fields.Diff(cur.Value, value)
	if err != nil {
		return nil
	}
	out := make(map[string]Timestamp, len(cur.Fields)+len(parts))
	for p, t := range cur.Fields {
		out[p] = t
	}
	for _, p := range parts {
		out[p] = now
	}
	return out
}

// SetFields installs the part splitter once the API layer has built its
// schemas. It must be called before the node merges or updates anything:
// a record updated without it stops tracking its parts.
func (s *Store) SetFields(f Fields) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fields = f
}

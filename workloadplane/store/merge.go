package store

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Replicas converge by merging records, never by coordinating.
//
// Each create of a key starts an incarnation, stamped Born. Of two records
// of different incarnations the later one wins whole: a key deleted and
// created again is a new object, which no write to the old one touches.
// Within an incarnation a tombstone wins over every write, whatever its
// stamp: an acknowledged delete is never undone by a write that had not
// seen it (an agent's status update on the other side of a partition). Two
// live records of one incarnation merge per part, each part as the record
// that wrote it last has it (Record.Fields, fields.go): a label, an
// annotation, a finalizer, a container, a condition, a field. So two users
// adding different labels on two nodes at the same moment, or a node
// updating a pod's status while a user changes its spec, all keep their
// writes. Records that do not track their parts (no schema for their kind,
// or written before parts were recorded) merge in two parts, each
// last-writer-wins by its own stamp: the object (everything but "status",
// stamped by Stamp) and its "status" (stamped by StatusStamp). Deletion is
// sticky: once either side has metadata.deletionTimestamp, the merge keeps
// it.
//
// Records written before incarnations were recorded (Born zero) compete as
// they did then: a tombstone and a live record by the newer of their
// stamps.
//
// The merge is commutative, associative (among records with incarnations)
// and deterministic, so every replica that has seen the same writes holds
// the same records.

// incarnations compares the incarnations of two records (or entries) by
// their Born stamps: -1, 0 or 1, and false when either is unknown (zero).
func incarnations(a, b Timestamp) (int, bool) {
	if a == (Timestamp{}) || b == (Timestamp{}) {
		return 0, false
	}
	switch {
	case a.Less(b):
		return -1, true
	case b.Less(a):
		return 1, true
	}
	return 0, true
}

// version is the newer of a record's stamps.
func (r Record) version() Timestamp {
	if r.Stamp.Less(r.StatusStamp) {
		return r.StatusStamp
	}
	return r.Stamp
}

// Version names what a live record holds, the same on every replica: two
// replicas whose records of a key have the same stamps hold the same
// object. Unlike RV it can be compared across replicas, for optimistic
// concurrency through any node. Its high bits are the millisecond of the
// record's newest stamp, so of two versions of one key the one with the
// higher millisecond is the newer; the low VersionHashBits hash all its
// stamps, so two versions written in the same millisecond (or merged from
// the same writes in part) differ too. It is never zero.
func (r Record) Version() uint64 {
	sum := stampHash(stampHash(stampHash(fnvOffset, r.Born), r.Stamp), r.StatusStamp)
	for p, t := range r.Fields { // order-free: a sum of each part's hash
		sum += stampHash(fnvString(fnvOffset, p), t)
	}
	ms := uint64(r.version().Wall / int64(time.Millisecond))
	return max(ms<<VersionHashBits|sum&(1<<VersionHashBits-1), 1)
}

// VersionHashBits is how many low bits of a Version hash its stamps.
const VersionHashBits = 20

// FNV-1a, 64 bits (hash/fnv's, without its allocation per use).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func fnvString(h uint64, s string) uint64 {
	for i := range len(s) {
		h = (h ^ uint64(s[i])) * fnvPrime
	}
	return h
}

func fnvUint64(h, v uint64) uint64 {
	for range 8 {
		h = (h ^ v&0xff) * fnvPrime
		v >>= 8
	}
	return h
}

func stampHash(h uint64, t Timestamp) uint64 {
	return fnvString(fnvUint64(fnvUint64(h, uint64(t.Wall)), uint64(t.Logical)), t.Node) * fnvPrime // the prime ends the node ID
}

// localStamps stamps a local write of value over cur: each part that
// changed gets now; an unchanged part keeps its stamp.
func localStamps(cur Record, live bool, value []byte, now func() Timestamp) (Timestamp, Timestamp) {
	if !live {
		t := now()
		return t, t
	}
	oldRest, oldStatus, err1 := split(cur.Value)
	newRest, newStatus, err2 := split(value)
	restChanged := err1 != nil || err2 != nil || !equalJSON(oldRest, newRest)
	statusChanged := err1 != nil || err2 != nil || !bytes.Equal(oldStatus, newStatus)
	// A part that did not change keeps its stamp, so a write that changes
	// nothing does not override a concurrent write elsewhere.
	stamp, statusStamp := cur.Stamp, cur.StatusStamp
	if restChanged {
		stamp = now()
	}
	if statusChanged {
		statusStamp = now()
	}
	return stamp, statusStamp
}

// merge combines what a replica holds with an incoming record; it returns
// the result and whether it differs from cur.
func merge(f Fields, cur Record, exists bool, in Record) (Record, bool) {
	if !exists {
		return in, true
	}
	newer := func() (Record, bool) {
		if cur.version().Less(in.version()) {
			return in, true
		}
		return cur, false
	}
	inc, known := incarnations(cur.Born, in.Born)
	switch {
	case inc < 0:
		return in, true
	case inc > 0:
		return cur, false
	case known && cur.Deleted && !in.Deleted:
		return cur, false
	case known && in.Deleted && !cur.Deleted:
		return in, true
	case cur.Deleted || in.Deleted:
		return newer()
	}
	if f != nil && cur.tracked() && in.tracked() {
		if out, ok := mergeParts(f, cur, in); ok {
			return out, !out.same(cur)
		}
	}
	obj, other := cur, in
	if cur.Stamp.Less(in.Stamp) {
		obj, other = in, cur
	}
	status := cur
	if cur.StatusStamp.Less(in.StatusStamp) {
		status = in
	}
	out := Record{Key: cur.Key, Stamp: obj.Stamp, StatusStamp: status.StatusStamp, Born: cur.Born}
	if out.Born == (Timestamp{}) {
		out.Born = in.Born
	}
	value, err := stitch(obj.Value, status.Value, other.Value)
	if err != nil {
		return newer() // not an object: whole-record last writer wins
	}
	out.Value = value
	if out.same(cur) {
		return cur, false
	}
	return out, true
}

// same reports whether r and o hold the same state.
func (r Record) same(o Record) bool {
	return r.Stamp == o.Stamp && r.StatusStamp == o.StatusStamp && r.Born == o.Born &&
		bytes.Equal(r.Value, o.Value) && maps.Equal(r.Fields, o.Fields)
}

// stitch builds obj's document with status's "status" and, if obj lacks a
// deletion that other has, other's deletionTimestamp and grace period.
func stitch(obj, status, other []byte) ([]byte, error) {
	var doc, st, ot map[string]json.RawMessage
	if err := json.Unmarshal(obj, &doc); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(status, &st); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(other, &ot); err != nil {
		return nil, err
	}
	if s, ok := st["status"]; ok {
		doc["status"] = s
	} else {
		delete(doc, "status")
	}
	var meta, otherMeta map[string]json.RawMessage
	_ = json.Unmarshal(doc["metadata"], &meta)
	_ = json.Unmarshal(ot["metadata"], &otherMeta)
	if meta != nil && meta["deletionTimestamp"] == nil && otherMeta["deletionTimestamp"] != nil {
		for _, k := range []string{"deletionTimestamp", "deletionGracePeriodSeconds"} {
			if v, ok := otherMeta[k]; ok {
				meta[k] = v
			}
		}
		m, err := json.Marshal(meta)
		if err != nil {
			return nil, err
		}
		doc["metadata"] = m
	}
	return json.Marshal(doc)
}

// split returns a document without its "status", and the status.
func split(v []byte) (map[string]json.RawMessage, []byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(v, &doc); err != nil {
		return nil, nil, err
	}
	status := doc["status"]
	delete(doc, "status")
	return doc, status, nil
}

func equalJSON(a, b map[string]json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// Buckets is the number of digest buckets a replica's keys hash into.
const Buckets = 256

// Digest summarizes a replica for anti-entropy: per bucket, the XOR of the
// hashes of its records' keys and stamps. Two replicas holding the same
// records have the same digest; a differing bucket names where to look.
type Digest [Buckets][32]byte

// Entry is what anti-entropy compares for one key.
type Entry struct {
	Key         string    `json:"key"`
	Stamp       Timestamp `json:"stamp"`
	StatusStamp Timestamp `json:"statusStamp"`
	Deleted     bool      `json:"deleted,omitempty"`
	Born        Timestamp `json:"born,omitzero"`
	// Fields sums the record's part stamps (fieldsSum).
	Fields string `json:"fields,omitempty"`
}

// Newer reports whether e may hold writes that r has not seen, by the
// rules of merge. Both may: two replicas that each merged a different
// part's write hold records newer than each other, and both are true
// whenever the part stamps differ (only their sums are compared).
func (e Entry) Newer(r Entry) bool {
	inc, known := incarnations(e.Born, r.Born)
	switch {
	case inc != 0:
		return inc > 0
	case known && e.Deleted != r.Deleted:
		return e.Deleted
	case e.Deleted || r.Deleted:
		return r.version().Less(e.version())
	}
	return r.Stamp.Less(e.Stamp) || r.StatusStamp.Less(e.StatusStamp) || (e.Fields != "" && e.Fields != r.Fields)
}

func (e Entry) version() Timestamp {
	return Record{Stamp: e.Stamp, StatusStamp: e.StatusStamp}.version()
}

func (r Record) entry() Entry {
	return Entry{Key: r.Key, Stamp: r.Stamp, StatusStamp: r.StatusStamp, Deleted: r.Deleted, Born: r.Born, Fields: fieldsSum(r.Fields)}
}

// Bucket is the digest bucket key belongs to.
func Bucket(key string) int {
	h := sha256.Sum256([]byte(key))
	return int(h[0])
}

// hash leaves Born out: a write's stamps imply its incarnation, and
// replicas that do not record incarnations yet hash as before.
func (e Entry) hash() [32]byte {
	e.Born = Timestamp{}
	b, _ := json.Marshal(e)
	return sha256.Sum256(b)
}

func (d *Digest) toggle(e Entry) {
	h := e.hash()
	b := &d[Bucket(e.Key)]
	for i := range b {
		b[i] ^= h[i]
	}
}

func (s *Store) indexPut(e Entry) {
	s.index[e.Key] = e
	s.digest.toggle(e)
}

func (s *Store) indexDrop(e Entry) {
	if _, ok := s.index[e.Key]; ok {
		delete(s.index, e.Key)
		s.digest.toggle(e)
	}
}

// Digest returns the replica's current digest.
func (s *Store) Digest() Digest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.digest
}

// Entries lists the keys (tombstones included) in the given buckets with
// their stamps.
func (s *Store) Entries(buckets []int) []Entry {
	want := map[int]bool{}
	for _, b := range buckets {
		want[b] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Entry
	for k, e := range s.index {
		if want[Bucket(k)] {
			out = append(out, e)
		}
	}
	return out
}

// Records returns the records (tombstones included, without their last
// value) under keys; missing keys are skipped.
func (s *Store) Records(keys []string) ([]Record, error) {
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketObjects)
		for _, k := range keys {
			v := b.Get([]byte(k))
			if v == nil {
				continue
			}
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			if r.Deleted {
				r.Value = nil
			}
			r.RV = 0
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// Len is the number of keys the replica holds, tombstones included.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.index)
}

// Clock is the replica's hybrid logical clock.
func (s *Store) Clock() *Clock { return s.clock }

package store

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	// ErrNotFound means no live record has the key.
	ErrNotFound = errors.New("store: not found")
	// ErrExists means a create found a live record under the key.
	ErrExists = errors.New("store: already exists")
	// ErrConflict means a write's resourceVersion precondition did not hold.
	ErrConflict = errors.New("store: resourceVersion conflict")
	// ErrExpired means a watch asked to resume from a resourceVersion older
	// than the retained log; the watcher must list again.
	ErrExpired = errors.New("store: resourceVersion too old")
	// ErrClosed means the store or watcher was closed.
	ErrClosed = errors.New("store: closed")
)

var (
	bucketObjects = []byte("objects")
	bucketLog     = []byte("log")
	bucketMeta    = []byte("meta")
	keyRV         = []byte("rv")
	keyReplica    = []byte("replica")
)

// MaxReplica bounds replica IDs: a replica's ID is below it (see Replica).
const MaxReplica = 1_000_000_000_000

// Record is one key's state on this replica.
type Record struct {
	// Key is "kind/namespace/name" (namespace empty for cluster objects).
	Key string `json:"key"`
	// Value is the JSON document; nil for a tombstone.
	Value json.RawMessage `json:"value,omitempty"`
	// Deleted marks a tombstone.
	Deleted bool `json:"deleted,omitempty"`
	// Stamp orders writes of the object (all but its status) across
	// replicas; for a tombstone, the deletion.
	Stamp Timestamp `json:"stamp"`
	// StatusStamp orders writes of the object's "status" (see merge.go).
	StatusStamp Timestamp `json:"statusStamp"`
	// Born stamps the create of this incarnation of the key; a tombstone
	// keeps the Born of what it deleted (see merge.go). Zero in records
	// written before incarnations were recorded.
	Born Timestamp `json:"born,omitzero"`
	// Fields stamps each part of the document (Fields, fields.go) that a
	// write since the create changed, so that concurrent writes of
	// different parts all survive a merge; a part stamped here that the
	// document lacks was removed then. Nil in records that merge whole: not
	// changed since the create, written before parts were recorded, or of
	// a kind with no schema.
	Fields map[string]Timestamp `json:"fields,omitzero"`
	// RV is the per-replica resourceVersion at which this replica applied the
	// record. It is not replicated.
	RV uint64 `json:"rv"`
}

// EventType says how a watch event changed a key.
type EventType string

// Event types, matching Kubernetes watch event names.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
)

// Event is one change in the watch log. For Deleted, Record.Value is the last
// live value. For Modified, Prev is the value before the change, so a
// watcher that filters can tell a value that stopped (or started) matching.
type Event struct {
	Type   EventType
	Record Record
	Prev   json.RawMessage `json:"prev,omitempty"`
}

// Options configures a Store.
type Options struct {
	// Node is this replica's node ID, written into every local stamp.
	Node string
	// Now is the physical clock; nil means time.Now.
	Now func() time.Time
	// LogSize is how many watch-log entries are retained; zero means 100000.
	LogSize uint64
	// WatchQueue bounds the events buffered for one watcher before it is cut
	// with ErrTooSlow; zero means 10000.
	WatchQueue int
	// Fields, if set, splits documents into parts that merge on their
	// own; nil merges the object and its status each whole.
	Fields Fields
	// OnLocalWrite, if set, receives every local write (Put, Delete) once it
	// is committed, for replication. It is called with the store locked and
	// must not block or call back into the store.
	OnLocalWrite func(Record)
}

// Store is a persistent replica. It is safe for concurrent use.
type Store struct {
	db      *bolt.DB
	clock   *Clock
	logSize uint64
	queue   int

	onWrite func(Record)
	fields  Fields

	mu       sync.Mutex // serializes writes with watcher registration
	index    map[string]Entry
	digest   Digest
	rv       uint64
	replica  uint64
	oldest   uint64 // smallest resourceVersion a watch may resume from
	watchers map[*Watcher]struct{}
	closed   bool
}

// Open opens (creating if needed) the store at path.
func Open(path string, opts Options) (*Store, error) {
	if opts.Node == "" {
		return nil, errors.New("store: Options.Node is required")
	}
	if opts.LogSize == 0 {
		opts.LogSize = 100000
	}
	if opts.WatchQueue == 0 {
		opts.WatchQueue = 10000
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w (is another mycel node using this data dir?)", path, err)
	}
	s := &Store{db: db, clock: NewClock(opts.Node, opts.Now), logSize: opts.LogSize, queue: opts.WatchQueue,
		onWrite: opts.OnLocalWrite, fields: opts.Fields, index: map[string]Entry{}, watchers: map[*Watcher]struct{}{}}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketObjects, bucketLog, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keyRV); v != nil {
			s.rv = binary.BigEndian.Uint64(v)
		} else if err := meta.Put(keyRV, u64(1)); err != nil {
			// resourceVersions start at 1: 0 means "any" to clients.
			return err
		} else {
			s.rv = 1
		}
		if v := meta.Get(keyReplica); v != nil {
			s.replica = binary.BigEndian.Uint64(v)
		} else {
			s.replica = newReplica()
			if err := meta.Put(keyReplica, u64(s.replica)); err != nil {
				return err
			}
		}
		if s.rv > 1 {
			s.oldest = s.rv
		}
		if k, _ := tx.Bucket(bucketLog).Cursor().First(); k != nil {
			s.oldest = binary.BigEndian.Uint64(k) - 1
			if s.oldest == 1 {
				s.oldest = 0 // nothing was written at 1 (a new store's start)
			}
		}
		// Observe the newest stamp so local writes after a restart order after
		// everything written before it, even if the wall clock went back.
		return tx.Bucket(bucketObjects).ForEach(func(_, v []byte) error {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			s.clock.Observe(r.version())
			s.indexPut(r.entry())
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: load %s: %w", path, err)
	}
	return s, nil
}

// Close stops all watchers and closes the database. It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for w := range s.watchers {
		w.fail(ErrClosed)
	}
	s.watchers = nil
	s.mu.Unlock()
	return s.db.Close()
}

// Check reports whether the store answers a read.
func (s *Store) Check() error {
	return s.db.View(func(*bolt.Tx) error { return nil })
}

// ResourceVersion is the replica's current resourceVersion.
func (s *Store) ResourceVersion() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rv
}

// Replica identifies this replica's resourceVersions: a random number in
// [1, MaxReplica) drawn when the store was created, so resourceVersions of
// two replicas (or of one data dir and its replacement) are told apart.
func (s *Store) Replica() uint64 { return s.replica }

func newReplica() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return 1 + binary.BigEndian.Uint64(b[:])%(MaxReplica-1)
}

// Get returns the live record under key.
func (s *Store) Get(key string) (Record, error) {
	r, err := s.record(key)
	if err == nil && r.Deleted {
		return Record{}, ErrNotFound
	}
	return r, err
}

// record reads what key holds, live or a tombstone.
func (s *Store) record(key string) (Record, error) {
	var r Record
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketObjects).Get([]byte(key))
		if v == nil {
			return ErrNotFound
		}
		return json.Unmarshal(v, &r)
	})
	return r, err
}

// Tombstone returns the tombstone under key, which holds the deleted
// value, or ErrNotFound if the key is live or unknown here.
func (s *Store) Tombstone(key string) (Record, error) {
	r, err := s.record(key)
	if err == nil && !r.Deleted {
		return Record{}, ErrNotFound
	}
	return r, err
}

// ListAfter calls keep with the live records whose keys start with prefix
// and come after the key after ("" for all), in key order, until keep
// returns false; then it counts the live records left. It returns the
// resourceVersion they are all consistent with: one read transaction.
func (s *Store) ListAfter(prefix, after string, keep func(Record) (bool, error)) (rv uint64, left int64, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		rv = readRV(tx)
		c := tx.Bucket(bucketObjects).Cursor()
		p := []byte(prefix)
		k, v := c.Seek(p)
		if after > prefix {
			if k, v = c.Seek([]byte(after)); string(k) == after {
				k, v = c.Next()
			}
		}
		more := true
		for ; k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if !more {
				// Only whether it is a tombstone: the value is not decoded.
				var d struct {
					Deleted bool `json:"deleted"`
				}
				if err := json.Unmarshal(v, &d); err != nil {
					return fmt.Errorf("decode %s: %w", k, err)
				}
				if !d.Deleted {
					left++
				}
				continue
			}
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			if r.Deleted {
				continue
			}
			var err error
			if more, err = keep(r); err != nil {
				return err
			}
		}
		return nil
	})
	return rv, left, err
}

// List returns the live records whose keys start with prefix, in key order,
// and the resourceVersion they are consistent with.
func (s *Store) List(prefix string) ([]Record, uint64, error) {
	var out []Record
	var rv uint64
	err := s.db.View(func(tx *bolt.Tx) error {
		rv = readRV(tx)
		c := tx.Bucket(bucketObjects).Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode %s: %w", k, err)
			}
			if !r.Deleted {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, rv, err
}

// Precondition guards a write.
type Precondition struct {
	// MustNotExist makes the write a create: it fails with ErrExists if a
	// live record is present.
	MustNotExist bool `json:"mustNotExist,omitempty"`
	// MustExist fails the write with ErrNotFound if no live record is present.
	MustExist bool `json:"mustExist,omitempty"`
	// RV, if non-zero, fails the write with ErrConflict unless the live
	// record's RV equals it.
	RV uint64 `json:"rv,omitempty"`
	// Version, if non-zero, fails the write with ErrConflict unless the
	// live record's Version equals it.
	Version uint64 `json:"version,omitempty"`
	// Strict asks that the precondition be checked where the key's writes
	// meet (its owner: replica.Routed) rather than on this replica alone;
	// a Store checks it as any other.
	Strict bool `json:"strict,omitempty"`
}

// check is the error of a write under pre over cur (live or not).
func (pre Precondition) check(cur Record, live bool) error {
	switch {
	case pre.MustNotExist && live:
		return ErrExists
	case pre.MustExist && !live:
		return ErrNotFound
	case pre.RV != 0 && (!live || cur.RV != pre.RV), pre.Version != 0 && (!live || cur.Version() != pre.Version):
		return ErrConflict
	}
	return nil
}

// Holds reports whether a write under pre over cur (live or not) may go on.
func (pre Precondition) Holds(cur Record, live bool) bool { return pre.check(cur, live) == nil }

// Put writes value under key as a local write and returns the new record.
// A value byte-equal to the live one is not written: Put returns the
// current record.
func (s *Store) Put(key string, value []byte, pre Precondition) (Record, error) {
	if !json.Valid(value) {
		return Record{}, fmt.Errorf("store: put %s: value is not JSON", key)
	}
	return s.write(key, pre, true, func(cur Record, _ bool) (Record, bool) {
		live := !cur.Deleted && cur.Value != nil
		if live && bytes.Equal(cur.Value, value) {
			// A write that changes nothing is not a write: no new
			// resourceVersion, no watch event, nothing to replicate.
			return cur, false
		}
		stamp, statusStamp := localStamps(cur, live, value, s.clock.Now)
		if !live {
			// A create: a new incarnation.
			return Record{Key: key, Value: value, Stamp: stamp, StatusStamp: statusStamp, Born: stamp}, true
		}
		return Record{Key: key, Value: value, Stamp: stamp, StatusStamp: statusStamp, Born: cur.Born,
			Fields: s.partStamps(cur, value, maxStamp(stamp, statusStamp))}, true
	})
}

// Delete writes a tombstone under key and returns it; Value holds the last
// live value.
func (s *Store) Delete(key string, pre Precondition) (Record, error) {
	pre.MustExist = true
	return s.write(key, pre, true, func(cur Record, _ bool) (Record, bool) {
		t := s.clock.Now()
		return Record{Key: key, Value: cur.Value, Deleted: true, Stamp: t, StatusStamp: t, Born: cur.Born}, true
	})
}

// Merge applies a record received from another replica by the rules in
// merge.go (last writer wins, per part). It reports whether the replica
// changed.
func (s *Store) Merge(r Record) (bool, error) {
	n, err := s.MergeBatch([]Record{r})
	return n == 1, err
}

// MergeBatch applies records received from another replica, as Merge does,
// in one transaction (one fsync for the batch), and returns how many
// changed the replica. A malformed record, or one that cannot be written,
// is left out and reported in the error; the others are applied.
func (s *Store) MergeBatch(recs []Record) (int, error) {
	var errs []error
	ops := make([]op, 0, len(recs))
	for _, r := range recs {
		if r.Key == "" || (!r.Deleted && !json.Valid(r.Value)) {
			errs = append(errs, fmt.Errorf("store: merge %q: malformed record", r.Key))
			continue
		}
		s.clock.Observe(r.version())
		in := Record{Key: r.Key, Value: r.Value, Deleted: r.Deleted, Stamp: r.Stamp, StatusStamp: r.StatusStamp, Born: r.Born, Fields: r.Fields}
		ops = append(ops, op{key: r.Key, next: func(cur Record, exists bool) (Record, bool) { return merge(s.fields, cur, exists, in) }})
	}
	changes, err := s.commit(ops, false)
	if err != nil && len(ops) > 1 {
		// One record that cannot be written must not hold back the rest:
		// each in a transaction of its own.
		changes = changes[:0]
		for _, o := range ops {
			c, err := s.commit([]op{o}, false)
			if err != nil {
				errs = append(errs, fmt.Errorf("store: merge %s: %w", o.key, err))
				continue
			}
			changes = append(changes, c...)
		}
	} else if err != nil {
		errs = append(errs, fmt.Errorf("store: merge %s: %w", ops[0].key, err))
	}
	n := 0
	for _, c := range changes {
		if c.wrote {
			n++
		}
	}
	return n, errors.Join(errs...)
}

// op is one key's read-modify-write: next receives the current record
// (tombstones included) and returns the record to store, or false to leave
// the key alone.
type op struct {
	key  string
	pre  Precondition
	next func(cur Record, exists bool) (Record, bool)
}

// change is what an op did.
type change struct {
	out, prev Record
	wrote     bool
	ev        *Event
}

// write runs one op in a transaction of its own. A local write is passed
// to OnLocalWrite.
func (s *Store) write(key string, pre Precondition, local bool, next func(cur Record, exists bool) (Record, bool)) (Record, error) {
	changes, err := s.commit([]op{{key: key, pre: pre, next: next}}, local)
	if err != nil {
		if errors.Is(err, ErrExists) || errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
			return Record{}, fmt.Errorf("%s: %w", key, err)
		}
		return Record{}, fmt.Errorf("store: write %s: %w", key, err)
	}
	return changes[0].out, nil
}

// commit runs ops in one transaction, then indexes what they wrote, passes
// local writes to OnLocalWrite and offers the events to the watchers. If
// any op fails, none is applied.
func (s *Store) commit(ops []op, local bool) ([]change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if len(ops) == 0 {
		return nil, nil
	}
	changes := make([]change, len(ops))
	err := s.db.Update(func(tx *bolt.Tx) error {
		first := readRV(tx)
		rv := first
		for i, o := range ops {
			c, err := apply(tx, o, &rv)
			if err != nil {
				return err
			}
			changes[i] = c
		}
		if rv == first {
			return nil
		}
		if err := tx.Bucket(bucketMeta).Put(keyRV, u64(rv)); err != nil {
			return err
		}
		return s.trimLog(tx, rv)
	})
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		if c.out.RV > s.rv {
			s.rv = c.out.RV
		}
		if !c.wrote {
			continue
		}
		if c.prev.Key != "" {
			s.indexDrop(c.prev.entry())
		}
		s.indexPut(c.out.entry())
		if local && s.onWrite != nil {
			r := c.out
			if r.Deleted {
				r.Value = nil
			}
			s.onWrite(r)
		}
		if c.ev != nil {
			for w := range s.watchers {
				w.offer(*c.ev)
			}
		}
	}
	return changes, nil
}

// apply runs o in tx, giving what it writes the resourceVersion after *rv
// and advancing *rv.
func apply(tx *bolt.Tx, o op, rv *uint64) (change, error) {
	objs := tx.Bucket(bucketObjects)
	var cur Record
	exists := false
	if v := objs.Get([]byte(o.key)); v != nil {
		if err := json.Unmarshal(v, &cur); err != nil {
			return change{}, fmt.Errorf("decode %s: %w", o.key, err)
		}
		exists = true
	}
	live := exists && !cur.Deleted
	if err := o.pre.check(cur, live); err != nil {
		return change{}, err
	}
	rec, ok := o.next(cur, exists)
	if !ok {
		return change{out: cur}, nil
	}
	*rv++
	rec.RV = *rv
	enc, err := json.Marshal(rec)
	if err != nil {
		return change{}, err
	}
	if err := objs.Put([]byte(o.key), enc); err != nil {
		return change{}, err
	}
	c := change{out: rec, prev: cur, wrote: true}
	if rec.Deleted && !live {
		// A tombstone over a tombstone (or nothing) changes nothing a watcher sees.
		return c, nil
	}
	typ := Modified
	switch {
	case rec.Deleted:
		typ = Deleted
		if rec.Value == nil {
			rec.Value = cur.Value
		}
	case !live:
		typ = Added
	}
	c.out = rec
	c.ev = &Event{Type: typ, Record: rec}
	if typ == Modified {
		c.ev.Prev = cur.Value
	}
	entry, err := json.Marshal(c.ev)
	if err != nil {
		return change{}, err
	}
	return c, tx.Bucket(bucketLog).Put(u64(*rv), entry)
}

// trimLog drops the oldest log entries once the log exceeds its size by 10%.
func (s *Store) trimLog(tx *bolt.Tx, rv uint64) error {
	if rv <= s.logSize || rv-s.oldest <= s.logSize+s.logSize/10 {
		return nil
	}
	keep := rv - s.logSize
	c := tx.Bucket(bucketLog).Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= keep; k, _ = c.Next() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	s.oldest = keep
	return nil
}

// CollectTombstones removes tombstones whose stamps are older than before and
// returns how many it removed. Replicas must have exchanged them by then;
// callers choose before well past the anti-entropy horizon.
func (s *Store) CollectTombstones(before time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketObjects).Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			if r.Deleted && r.Stamp.Wall < before.UnixNano() {
				if err := c.Delete(); err != nil {
					return err
				}
				s.indexDrop(r.entry())
				n++
			}
		}
		return nil
	})
	return n, err
}

func readRV(tx *bolt.Tx) uint64 {
	if v := tx.Bucket(bucketMeta).Get(keyRV); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

package objects

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/mycelfabric/mycel/workloadplane/store"
)

// ResourceVersion is what a resourceVersion says. Every node keeps its own
// sequence of changes (Seq, the store's per-replica RV), which orders its
// watches and lists; an object's resourceVersion also carries the
// object's Version, which every replica that holds the same writes gives
// it. So a resourceVersion read on any node is a precondition on any
// node, and a watch can tell a resourceVersion of another node's sequence
// (and answer 410 Gone: the client lists again) from one of its own.
//
// It is written as one decimal number, as Kubernetes' resourceVersions are
// (clients must treat them as opaque, and newer ones compare them as
// integers): Seq, then Replica in 12 digits, then Version in 19. Of two
// resourceVersions from one node, the later change has the larger number.
// A shorter number is a bare Seq of this node, as nodes wrote them before
// (and "0", which means "any").
type ResourceVersion struct {
	// Seq is the position in the serving node's sequence of changes.
	Seq uint64
	// Replica is the serving node's store (store.Store.Replica); 0 for a
	// bare Seq.
	Replica uint64
	// Version is the object's store.Record.Version; 0 in a list's
	// resourceVersion.
	Version uint64
}

const (
	replicaDigits = 12 // store.MaxReplica is 10^12
	versionDigits = 19 // a Version is below 2^63
)

// IsZero reports whether rv is empty ("" or "0").
func (rv ResourceVersion) IsZero() bool { return rv == ResourceVersion{} }

func (rv ResourceVersion) String() string {
	if rv.Replica == 0 {
		return strconv.FormatUint(rv.Seq, 10)
	}
	return fmt.Sprintf("%d%0*d%0*d", rv.Seq, replicaDigits, rv.Replica, versionDigits, rv.Version)
}

// ParseResourceVersion reads a resourceVersion as a client sends it ("" is
// zero).
func ParseResourceVersion(s string) (ResourceVersion, error) {
	if s == "" {
		return ResourceVersion{}, nil
	}
	bad := apierrors.NewBadRequest(fmt.Sprintf("invalid resourceVersion %q: must be a number from a previous response", s))
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return ResourceVersion{}, bad
		}
	}
	if len(s) <= replicaDigits+versionDigits {
		seq, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return ResourceVersion{}, bad
		}
		return ResourceVersion{Seq: seq}, nil
	}
	v := s[len(s)-versionDigits:]
	r := s[len(s)-versionDigits-replicaDigits : len(s)-versionDigits]
	seq, err1 := strconv.ParseUint(s[:len(s)-versionDigits-replicaDigits], 10, 64)
	replica, err2 := strconv.ParseUint(r, 10, 64)
	version, err3 := strconv.ParseUint(v, 10, 63)
	if err1 != nil || err2 != nil || err3 != nil || replica == 0 {
		return ResourceVersion{}, bad
	}
	return ResourceVersion{Seq: seq, Replica: replica, Version: version}, nil
}

// MustParseResourceVersion parses a resourceVersion this node wrote; a
// malformed one is zero.
func MustParseResourceVersion(s string) ResourceVersion {
	rv, _ := ParseResourceVersion(s)
	return rv
}

// ListVersion is the resourceVersion of a list (or a watch bookmark) of c
// read at seq on this node.
func (c Collection) ListVersion(seq uint64) ResourceVersion { return c.o.listVersion(seq) }

func (o *Objects) listVersion(seq uint64) ResourceVersion {
	return ResourceVersion{Seq: seq, Replica: o.store.Replica()}
}

// recordVersion is the resourceVersion of rec on this node.
func (o *Objects) recordVersion(rec store.Record) ResourceVersion {
	return ResourceVersion{Seq: rec.RV, Replica: o.store.Replica(), Version: rec.Version()}
}

// foreign reports whether rv names a place in another node's sequence.
func (o *Objects) foreign(rv ResourceVersion) bool {
	return rv.Replica != 0 && rv.Replica != o.store.Replica()
}

// precondition is the store's precondition for an object write at rv: its
// Version, which holds on every node that has the same writes; a bare Seq
// (of this node) as before. A list's resourceVersion from another node
// names no object version: ok is false (the write conflicts).
func (o *Objects) precondition(rv ResourceVersion) (pre store.Precondition, ok bool) {
	switch {
	case rv.Version != 0:
		return store.Precondition{Version: rv.Version}, true
	case o.foreign(rv):
		return store.Precondition{}, false
	}
	return store.Precondition{RV: rv.Seq}, true
}

// ReplicationWait bounds how long a write whose resourceVersion precondition
// names a newer version of the object than this node holds waits for it to
// arrive before it answers 409 Conflict.
const ReplicationWait = 2 * time.Second

// Await waits, for at most ReplicationWait, until this node holds the
// version of namespace/name that rv names, when rv was read on another
// node and names a version that may be newer than this node's: a client
// that reads an object on one node and writes it through another is not
// refused because the version it read has not arrived yet. A stale rv
// (an older version) does not wait: it conflicts at once. It reports
// whether it waited, so a caller that read the object reads it again.
func (c Collection) Await(ctx context.Context, namespace, name string, rv ResourceVersion) bool {
	if rv.Version == 0 || !c.o.foreign(rv) {
		return false
	}
	// behind: this node may not have the version rv names yet. A
	// tombstone is never behind: nothing newer comes after a delete.
	behind := func(rec store.Record, exists bool) bool {
		if !exists || rec.Deleted {
			return !exists
		}
		v := rec.Version()
		return v != rv.Version && v>>store.VersionHashBits <= rv.Version>>store.VersionHashBits
	}
	key := c.r.key(namespace, name)
	rec, err := c.o.store.Get(key)
	if errors.Is(err, store.ErrNotFound) {
		rec, err = c.o.store.Tombstone(key)
	}
	if !behind(rec, err == nil) {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, ReplicationWait)
	defer cancel()
	c.o.store.Await(ctx, key, func(rec store.Record, exists bool) bool { return !behind(rec, exists) })
	return true
}

package replica

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/mycelfabric/mycel/machineplane/bus"
	"github.com/mycelfabric/mycel/securityplane/envelope"
	"github.com/mycelfabric/mycel/workloadplane/store"
)

// Strict writes (docs/protocols.md): a write whose precondition a client
// set (store.Precondition.Strict: a resourceVersion it read, or a create)
// is checked and committed by the key's owner, so that while nodes are
// connected a stale resourceVersion is 409 Conflict whichever node it
// reaches and two creates of one name through two nodes do not both
// succeed. The owner fans the write out as any local write; the asking
// node merges the record from the reply before it answers, so its client
// reads its own write there.
const (
	SubjectWriteFmt = "mycel.v1.store.write.%s" // the owner's peer ID
	TypeWrite       = "store.write/v1"
	TypeWriteReply  = "store.write-reply/v1"
)

// writeRequest is a strict write asked of the key's owner.
type writeRequest struct {
	Key string `json:"key"`
	// Value is the document to put; absent for a delete.
	Value  json.RawMessage    `json:"value,omitempty"`
	Delete bool               `json:"delete,omitempty"`
	Pre    store.Precondition `json:"pre"`
}

// writeReply is the owner's answer: the record it wrote, or the one it
// holds when the precondition failed (so the asker catches up before it
// retries), and which precondition failed.
type writeReply struct {
	Record *store.Record `json:"record,omitempty"`
	// Failed is "conflict", "exists" or "notfound" for a precondition
	// that did not hold.
	Failed string `json:"failed,omitempty"`
	Error  string `json:"error,omitempty"`
}

var failures = map[string]error{"conflict": store.ErrConflict, "exists": store.ErrExists, "notfound": store.ErrNotFound}

// Routed is the store as the object layer writes it: strict writes go to
// their key's owner, everything else to the local replica. An owner that
// does not answer (a partition not detected yet) leaves the write to the
// local replica, as every write is across a partition: the sides merge on
// heal.
type Routed struct {
	*store.Store
	r *Replicator
	// owner is the member that owns key, "" for none known.
	owner func(key string) string
}

// Routed returns the store with strict writes routed by owner.
func (r *Replicator) Routed(owner func(key string) string) *Routed {
	return &Routed{Store: r.cfg.Store, r: r, owner: owner}
}

// Put writes value under key (store.Store.Put), at the key's owner if
// pre is strict.
func (x *Routed) Put(key string, value []byte, pre store.Precondition) (store.Record, error) {
	if !x.routes(key, pre) {
		return x.Store.Put(key, value, pre)
	}
	if cur, err := x.Store.Get(key); err == nil && string(cur.Value) == string(value) && pre.Holds(cur, true) {
		return cur, nil // changes nothing: no write anywhere
	}
	return x.remote(writeRequest{Key: key, Value: value, Pre: pre}, func() (store.Record, error) { return x.Store.Put(key, value, pre) })
}

// Delete writes a tombstone under key (store.Store.Delete), at the key's
// owner if pre is strict.
func (x *Routed) Delete(key string, pre store.Precondition) (store.Record, error) {
	if !x.routes(key, pre) {
		return x.Store.Delete(key, pre)
	}
	return x.remote(writeRequest{Key: key, Delete: true, Pre: pre}, func() (store.Record, error) { return x.Store.Delete(key, pre) })
}

func (x *Routed) routes(key string, pre store.Precondition) bool {
	if !pre.Strict || pre.RV != 0 { // an RV is this replica's: no owner can check it
		return false
	}
	o := x.owner(key)
	return o != "" && o != x.r.cfg.Self
}

// remote asks the key's owner to write; local is the fallback when the
// owner does not answer.
func (x *Routed) remote(req writeRequest, local func() (store.Record, error)) (store.Record, error) {
	owner := x.owner(req.Key)
	ctx, cancel := context.WithTimeout(context.Background(), x.r.cfg.WriteTimeout)
	defer cancel()
	var rep writeReply
	typ, err := x.r.ep.Request(ctx, fmt.Sprintf(SubjectWriteFmt, owner), owner, TypeWrite, req, &rep)
	if err == nil && typ != TypeWriteReply {
		err = fmt.Errorf("answered with a %q", typ)
	}
	if err == nil && rep.Error != "" {
		err = errors.New(rep.Error)
	}
	if err != nil {
		x.r.unrouted.Inc()
		x.r.log.Debug("strict write: the owner did not take it; writing here", "key", req.Key, "owner", owner, "err", err)
		return local()
	}
	if rep.Record != nil {
		x.r.merge([]store.Record{*rep.Record}, x.r.received)
	}
	if failed, ok := failures[rep.Failed]; ok {
		return store.Record{}, fmt.Errorf("%s: %w", req.Key, failed)
	}
	if rep.Record == nil {
		return store.Record{}, fmt.Errorf("store: write %s: the owner %s answered no record", req.Key, owner)
	}
	rec, err := x.Store.Get(req.Key)
	if req.Delete || err != nil {
		// A tombstone (or deleted here since): what the owner wrote.
		return *rep.Record, nil
	}
	return rec, nil
}

// onWrite commits a strict write for a member that routed it here.
func (r *Replicator) onWrite(in *envelope.Envelope, refused error) (string, any) {
	var req writeRequest
	err := refused
	if err == nil {
		err = bus.Decode(in, TypeWrite, &req)
	}
	if err != nil {
		return TypeWriteReply, writeReply{Error: refusedPrefix + err.Error()}
	}
	var rec store.Record
	if req.Delete {
		rec, err = r.cfg.Store.Delete(req.Key, req.Pre)
	} else {
		rec, err = r.cfg.Store.Put(req.Key, req.Value, req.Pre)
	}
	for name, failed := range failures {
		if errors.Is(err, failed) {
			rep := writeReply{Failed: name}
			if cur, err := r.cfg.Store.Records([]string{req.Key}); err == nil && len(cur) == 1 {
				rep.Record = &cur[0]
			}
			return TypeWriteReply, rep
		}
	}
	if err != nil {
		return TypeWriteReply, writeReply{Error: err.Error()}
	}
	rec.RV = 0
	if rec.Deleted {
		rec.Value = nil
	}
	return TypeWriteReply, writeReply{Record: &rec}
}

// defaultWriteTimeout bounds how long a strict write waits for its owner.
const defaultWriteTimeout = 2 * time.Second

// Package replica makes the node's store one replica of an eventually
// consistent map shared by the whole fabric. Every local write, once
// committed, fans out over the bus as a signed envelope; receivers merge it
// (store.Merge: last writer wins per part, by hybrid logical clock). What
// a replica misses (it was down, partitioned, or a message was dropped) is
// repaired by anti-entropy: each period it compares digests with one live
// peer, bucket by bucket, then key by key, and pulls what the peer has newer
// and pushes what it has newer.
package replica

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/mycelfabric/mycel/machineplane/bus"
	"github.com/mycelfabric/mycel/securityplane/envelope"
	"github.com/mycelfabric/mycel/workloadplane/store"
)

// Subjects and envelope types (docs/protocols.md).
const (
	SubjectPut     = "mycel.v1.store.put"
	SubjectSyncFmt = "mycel.v1.store.sync.%s" // peer ID
	TypePut        = "store.put/v1"
	TypeSync       = "store.sync/v1"
	TypeSyncReply  = "store.sync-reply/v1"
)

// Defaults of the limits on one message, below the bus's payload limit.
const (
	DefaultBatchBytes     = 512 << 10
	DefaultBatchCount     = 256
	DefaultBucketsPerStep = 32
	DefaultKeysPerStep    = 256
	queueSize             = 10000
	DefaultInFlight       = 4
)

// Config configures a Replicator.
type Config struct {
	Store *store.Store
	Conn  bus.Conn
	// Key signs this node's messages; Self is its peer ID.
	Key  crypto.PrivKey
	Self string
	// Opener checks every received message (signature, sender, skew,
	// replay): the replicator's own, with its own replay cache.
	Opener *envelope.Opener
	// Peers lists the live peers anti-entropy may pick (not self).
	Peers func() []string
	// Interval is the anti-entropy period; zero means 5 seconds.
	Interval time.Duration
	// Timeout bounds one request; zero means 5 seconds.
	Timeout time.Duration
	// WriteTimeout bounds how long a strict write waits for its key's
	// owner before it is written here (Routed); zero means 2 seconds.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	Registry     prometheus.Registerer
	// BatchBytes and BatchCount bound the records of one message (a put, a
	// reply, a push); BucketsPerStep and KeysPerStep bound what one
	// anti-entropy request asks for. Zero means the defaults above.
	BatchBytes, BatchCount      int
	BucketsPerStep, KeysPerStep int
	// InFlight is how many requests of one anti-entropy round are
	// outstanding at once, and how many sync requests this replica serves
	// at once (from any peers): a heal moves thousands of records in
	// steps of KeysPerStep, and one step at a time waits out a round trip
	// for each, while a replica that several peers sync with at once
	// would make each wait for the others. Zero means DefaultInFlight; 1
	// keeps every exchange in order (protocol scripts).
	InFlight int
	// TombstoneTTL is how long deletions are kept for replicas that missed
	// them; zero means 24h. A replica away longer can bring a deleted
	// object back.
	TombstoneTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Replicator replicates one store.
type Replicator struct {
	cfg    Config
	log    *slog.Logger
	ep     *bus.Endpoint
	queue  chan store.Record
	urgent chan string // peers to sync with now

	mu   sync.Mutex
	next int // round-robin position in Peers

	sent, received, dropped, repaired, unrouted prometheus.Counter
}

// New returns a Replicator; call Enqueue from the store's OnLocalWrite and
// Run to start it.
func New(cfg Config) (*Replicator, error) {
	if cfg.Store == nil || cfg.Conn == nil || cfg.Key == nil || cfg.Opener == nil || cfg.Peers == nil {
		return nil, errors.New("replica: Store, Conn, Key, Opener and Peers are required")
	}
	cfg.Interval = cmp.Or(cfg.Interval, 5*time.Second)
	cfg.Timeout = cmp.Or(cfg.Timeout, 5*time.Second)
	cfg.WriteTimeout = cmp.Or(cfg.WriteTimeout, defaultWriteTimeout)
	cfg.BatchBytes = cmp.Or(cfg.BatchBytes, DefaultBatchBytes)
	cfg.BatchCount = cmp.Or(cfg.BatchCount, DefaultBatchCount)
	cfg.BucketsPerStep = cmp.Or(cfg.BucketsPerStep, DefaultBucketsPerStep)
	cfg.KeysPerStep = cmp.Or(cfg.KeysPerStep, DefaultKeysPerStep)
	cfg.InFlight = cmp.Or(cfg.InFlight, DefaultInFlight)
	cfg.TombstoneTTL = cmp.Or(cfg.TombstoneTTL, 24*time.Hour)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Replicator{cfg: cfg, log: cfg.Logger, queue: make(chan store.Record, queueSize), urgent: make(chan string, 64),
		ep: &bus.Endpoint{Conn: cfg.Conn, Key: cfg.Key, Opener: cfg.Opener, Now: cfg.Now}}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		if cfg.Registry != nil {
			cfg.Registry.MustRegister(c)
		}
		return c
	}
	r.sent = counter("mycel_replica_records_sent_total", "Local writes fanned out over the bus.")
	r.received = counter("mycel_replica_records_merged_total", "Records from other replicas that changed this one.")
	r.dropped = counter("mycel_replica_fanout_dropped_total", "Local writes not fanned out because the queue was full (anti-entropy repairs them).")
	r.repaired = counter("mycel_replica_records_repaired_total", "Records exchanged by anti-entropy.")
	r.unrouted = counter("mycel_replica_strict_writes_local_total", "Strict writes written here because their key's owner did not answer.")
	return r, nil
}

// Enqueue queues a committed local write for fan-out. It never blocks: when
// the queue is full the write is left to anti-entropy.
func (r *Replicator) Enqueue(rec store.Record) {
	select {
	case r.queue <- rec:
	default:
		r.dropped.Inc()
	}
}

// SyncSoon asks for a round of anti-entropy with peer now, ahead of the
// period: for a member just met, whose writes made before it was known
// were refused. It never blocks; if many are pending, the period catches up.
func (r *Replicator) SyncSoon(peer string) {
	select {
	case r.urgent <- peer:
	default:
	}
}

// Serve subscribes to other replicas' writes and sync requests until stop
// is called. Run serves; tests that drive a Replicator step by step serve
// without running it.
func (r *Replicator) Serve() (stop func(), err error) {
	put, err := r.ep.Handle(SubjectPut, r.onPut)
	if err != nil {
		return nil, fmt.Errorf("replica: subscribe: %w", err)
	}
	handle := r.ep.Handle
	if r.cfg.InFlight > 1 {
		handle = func(subject string, fn bus.Handler) (bus.Subscription, error) {
			return r.ep.HandleConcurrently(subject, r.cfg.InFlight, fn)
		}
	}
	syncs, err := handle(fmt.Sprintf(SubjectSyncFmt, r.cfg.Self), r.onSync)
	if err != nil {
		put.Unsubscribe()
		return nil, fmt.Errorf("replica: subscribe: %w", err)
	}
	writes, err := r.ep.Handle(fmt.Sprintf(SubjectWriteFmt, r.cfg.Self), r.onWrite)
	if err != nil {
		put.Unsubscribe()
		syncs.Unsubscribe()
		return nil, fmt.Errorf("replica: subscribe: %w", err)
	}
	return func() { put.Unsubscribe(); syncs.Unsubscribe(); writes.Unsubscribe() }, nil
}

// Run fans out writes, answers peers, runs anti-entropy and collects
// tombstones older than TombstoneTTL (hourly) until ctx is done.
func (r *Replicator) Run(ctx context.Context) error {
	stop, err := r.Serve()
	if err != nil {
		return err
	}
	defer stop()
	if err := r.cfg.Conn.Flush(); err != nil {
		return fmt.Errorf("replica: %w", err)
	}
	fanned := make(chan struct{})
	go func() {
		defer close(fanned)
		for {
			select {
			case <-ctx.Done():
				return
			case rec := <-r.queue:
				r.publishBatch(rec)
			}
		}
	}()
	defer func() { <-fanned }()
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	collect := time.NewTicker(time.Hour)
	defer collect.Stop()
	backoff := map[string]time.Duration{} // the last retry delay of peers failing in a row
	for {
		peer := ""
		select {
		case <-ctx.Done():
			return nil
		case peer = <-r.urgent:
		case <-t.C:
			peer = r.pick()
		case <-collect.C:
			if _, err := r.cfg.Store.CollectTombstones(r.cfg.Now().Add(-r.cfg.TombstoneTTL)); err != nil {
				r.log.Warn("collect tombstones", "err", err)
			}
		}
		if peer == "" {
			continue
		}
		err := r.SyncWith(ctx, peer)
		if err == nil || ctx.Err() != nil {
			delete(backoff, peer)
			continue
		}
		// Try the peer again soon: a member just met (at a heal, say)
		// refuses this node, or is not reachable over the bus yet, for
		// moments, and the next period is seconds away.
		wait := max(2*backoff[peer], firstRetry)
		if wait < r.cfg.Interval {
			backoff[peer] = wait
			time.AfterFunc(wait, func() { r.SyncSoon(peer) })
		} else {
			delete(backoff, peer)
			wait = 0 // the next period's round
		}
		if strings.Contains(err.Error(), refusedPrefix) || errors.Is(err, bus.ErrNoResponders) {
			r.log.Debug("anti-entropy", "peer", peer, "retry", wait, "err", err)
		} else {
			r.log.Warn("anti-entropy round failed", "peer", peer, "retry", wait, "err", err)
		}
	}
}

// firstRetry is how soon a failed round of anti-entropy is tried again;
// each failure in a row doubles it, until it reaches the period.
const firstRetry = 100 * time.Millisecond

func (r *Replicator) pick() string {
	peers := r.cfg.Peers()
	if len(peers) == 0 {
		return ""
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.next++
	return peers[r.next%len(peers)]
}

// batch is the payload of a put, and of sync requests and replies that
// carry records.
type batch struct {
	Records []store.Record `json:"records"`
}

// FanOut publishes every write queued now, in batches, and returns how
// many it published; Run does so as writes come.
func (r *Replicator) FanOut() int {
	n := 0
	for {
		select {
		case rec := <-r.queue:
			n += r.publishBatch(rec)
		default:
			return n
		}
	}
}

// publishBatch publishes first and what else is queued, up to the batch
// limits, and returns how many records it published.
func (r *Replicator) publishBatch(first store.Record) int {
	b := batch{Records: []store.Record{first}}
	size := len(first.Value)
more:
	for len(b.Records) < r.cfg.BatchCount && size < r.cfg.BatchBytes {
		select {
		case rec := <-r.queue:
			b.Records, size = append(b.Records, rec), size+len(rec.Value)
		default:
			break more
		}
	}
	if err := r.ep.Publish(SubjectPut, TypePut, b); err != nil {
		r.log.Warn("fan out writes; anti-entropy will repair", "records", len(b.Records), "err", err)
		return 0
	}
	r.sent.Add(float64(len(b.Records)))
	return len(b.Records)
}

func (r *Replicator) onPut(in *envelope.Envelope, refused error) (string, any) {
	var b batch
	err := refused
	if err == nil {
		err = bus.Decode(in, TypePut, &b)
	}
	if err != nil {
		r.log.Debug("drop put", "err", err)
		return "", nil
	}
	if in.Sender != r.cfg.Self {
		r.merge(b.Records, r.received)
	}
	return "", nil
}

func (r *Replicator) merge(recs []store.Record, count prometheus.Counter) {
	applied, err := r.cfg.Store.MergeBatch(recs)
	if err != nil {
		r.log.Warn("merge records", "err", err)
	}
	count.Add(float64(applied))
}

// refused starts the error of a reply to a request this node refused.
const refusedPrefix = "refused: "

// syncRequest is one step of anti-entropy, asked of a peer.
type syncRequest struct {
	// Op is "digest", "entries" (for Buckets), "get" (Keys) or "push" (Records).
	Op      string         `json:"op"`
	Buckets []int          `json:"buckets,omitempty"`
	Keys    []string       `json:"keys,omitempty"`
	Records []store.Record `json:"records,omitempty"`
}

type syncReply struct {
	Digest  [][]byte       `json:"digest,omitempty"`
	Entries []store.Entry  `json:"entries,omitempty"`
	Records []store.Record `json:"records,omitempty"`
	// More lists keys asked for but left out to stay under the size limit.
	More []string `json:"more,omitempty"`
	// MoreBuckets lists buckets asked for whose entries were left out to
	// stay under the size limit: the asker asks for them again.
	MoreBuckets []int  `json:"moreBuckets,omitempty"`
	Error       string `json:"error,omitempty"`
}

// fit is how many of recs (at least one) fit in one message.
func (r *Replicator) fit(recs []store.Record) int {
	size := 0
	for i, rec := range recs {
		if size += recordSize(rec); i > 0 && (size > r.cfg.BatchBytes || i >= r.cfg.BatchCount) {
			return i
		}
	}
	return len(recs)
}

// recordSize estimates the encoded size of a record: its document, its
// key and its stamps (each names a node).
func recordSize(rec store.Record) int {
	size := len(rec.Key) + len(rec.Value) + 3*stampSize
	for part := range rec.Fields {
		size += len(part) + stampSize
	}
	return size
}

// stampSize bounds the encoding of one stamp, with the field name.
const stampSize = 128

// fitEntries is the entries of as many of buckets (whole buckets, at
// least one) as fit in one message, and the buckets left out.
func (r *Replicator) fitEntries(buckets []int) ([]store.Entry, []int) {
	byBucket := map[int][]store.Entry{}
	for _, e := range r.cfg.Store.Entries(buckets) {
		b := store.Bucket(e.Key)
		byBucket[b] = append(byBucket[b], e)
	}
	var out []store.Entry
	size := 0
	for i, b := range buckets {
		for _, e := range byBucket[b] {
			size += len(e.Key) + len(e.Fields) + 3*stampSize
		}
		if i > 0 && size > r.cfg.BatchBytes {
			return out, buckets[i:]
		}
		out = append(out, byBucket[b]...)
	}
	return out, nil
}

func (r *Replicator) onSync(in *envelope.Envelope, refused error) (string, any) {
	var req syncRequest
	var rep syncReply
	err := refused
	if err == nil {
		err = bus.Decode(in, TypeSync, &req)
	}
	if err != nil {
		// Say why, so a peer this node has not met yet retries soon
		// rather than waiting out its timeout.
		r.log.Debug("refuse sync request", "err", err)
		req.Op, rep.Error = "", refusedPrefix+err.Error()
	}
	switch req.Op {
	case "":
	case "digest":
		d := r.cfg.Store.Digest()
		for i := range d {
			rep.Digest = append(rep.Digest, d[i][:])
		}
	case "entries":
		rep.Entries, rep.MoreBuckets = r.fitEntries(req.Buckets)
	case "get":
		recs, err := r.cfg.Store.Records(req.Keys)
		if err != nil {
			rep.Error = err.Error()
		}
		// Stay under the payload limit; the asker asks again for the rest.
		n := r.fit(recs)
		rep.Records = recs[:n]
		for _, rec := range recs[n:] {
			rep.More = append(rep.More, rec.Key)
		}
	case "push":
		r.merge(req.Records, r.repaired)
	default:
		rep.Error = fmt.Sprintf("unknown op %q", req.Op)
	}
	return TypeSyncReply, rep
}

func (r *Replicator) ask(ctx context.Context, peer string, req syncRequest) (syncReply, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	var rep syncReply
	typ, err := r.ep.Request(ctx, fmt.Sprintf(SubjectSyncFmt, peer), peer, TypeSync, req, &rep)
	if err != nil {
		return syncReply{}, fmt.Errorf("replica: %s: %w", req.Op, err)
	}
	if typ != TypeSyncReply {
		return syncReply{}, fmt.Errorf("replica: %s answered a %s with a %q", peer, req.Op, typ)
	}
	if rep.Error != "" {
		return syncReply{}, fmt.Errorf("%s at %s: %s", req.Op, peer, rep.Error)
	}
	return rep, nil
}

// SyncWith runs one round of anti-entropy with peer: afterwards each holds
// every write the other held when the round began.
func (r *Replicator) SyncWith(ctx context.Context, peer string) (err error) {
	start := time.Now()
	var pulled, pushed int
	defer func() {
		if pulled+pushed > 0 {
			r.log.Info("anti-entropy repaired", "peer", peer, "pulled", pulled, "pushed", pushed, "took", time.Since(start).Round(time.Millisecond), "err", err)
		}
	}()
	rep, err := r.ask(ctx, peer, syncRequest{Op: "digest"})
	if err != nil {
		return err
	}
	if len(rep.Digest) != store.Buckets {
		return fmt.Errorf("replica: %s sent a digest of %d buckets", peer, len(rep.Digest))
	}
	mine := r.cfg.Store.Digest()
	var diff []int
	for i := range mine {
		if string(mine[i][:]) != string(rep.Digest[i]) {
			diff = append(diff, i)
		}
	}
	for len(diff) > 0 {
		step := diff[:min(len(diff), r.cfg.BucketsPerStep)]
		left, pl, ps, err := r.syncBuckets(ctx, peer, step)
		pulled, pushed = pulled+pl, pushed+ps
		if err != nil {
			return err
		}
		diff = append(left, diff[len(step):]...)
	}
	return nil
}

// syncBuckets repairs buckets with peer, or as many of them as the peer's
// entries of them fit in one reply, and returns the buckets left for
// another step and how many records it pulled and pushed.
func (r *Replicator) syncBuckets(ctx context.Context, peer string, buckets []int) (left []int, pulled, pushed int, err error) {
	rep, err := r.ask(ctx, peer, syncRequest{Op: "entries", Buckets: buckets})
	if err != nil {
		return nil, 0, 0, err
	}
	if left = rep.MoreBuckets; len(left) >= len(buckets) || !slices.Equal(left, buckets[len(buckets)-len(left):]) {
		return nil, 0, 0, fmt.Errorf("replica: %s left out buckets %v of %v", peer, left, buckets)
	}
	buckets = buckets[:len(buckets)-len(left)]
	theirs := map[string]store.Entry{}
	for _, e := range rep.Entries {
		theirs[e.Key] = e
	}
	var pull, push []string
	for _, e := range r.cfg.Store.Entries(buckets) {
		t, ok := theirs[e.Key]
		delete(theirs, e.Key)
		// Both when each holds writes the other lacks.
		if !ok || e.Newer(t) {
			push = append(push, e.Key)
		}
		if ok && t.Newer(e) {
			pull = append(pull, e.Key)
		}
	}
	for k := range theirs {
		pull = append(pull, k)
	}
	sort.Strings(pull)
	pulled, err = r.pull(ctx, peer, pull)
	if err != nil {
		return nil, pulled, 0, err
	}
	pushed, err = r.push(ctx, peer, push)
	return left, pulled, pushed, err
}

// pull gets keys from peer in steps of KeysPerStep, InFlight steps at a
// time (Config.InFlight), merges what comes back and returns how many
// records that was.
func (r *Replicator) pull(ctx context.Context, peer string, keys []string) (int, error) {
	var mu sync.Mutex
	pulled := 0
	for len(keys) > 0 {
		var more []string
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(r.cfg.InFlight)
		for ; len(keys) > 0; keys = keys[min(len(keys), r.cfg.KeysPerStep):] {
			step := keys[:min(len(keys), r.cfg.KeysPerStep)]
			g.Go(func() error {
				rep, err := r.ask(gctx, peer, syncRequest{Op: "get", Keys: step})
				if err != nil {
					return err
				}
				r.merge(rep.Records, r.repaired)
				mu.Lock()
				defer mu.Unlock()
				pulled += len(rep.Records)
				more = append(more, rep.More...) // left out for size: asked again
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return pulled, err
		}
		keys = more
	}
	return pulled, nil
}

// push sends peer the records of keys in messages of at most KeysPerStep
// records, InFlight at a time, and returns how many records it sent.
func (r *Replicator) push(ctx context.Context, peer string, keys []string) (int, error) {
	var pushed atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.cfg.InFlight)
	for ; len(keys) > 0; keys = keys[min(len(keys), r.cfg.KeysPerStep):] {
		step := keys[:min(len(keys), r.cfg.KeysPerStep)]
		g.Go(func() error {
			recs, err := r.cfg.Store.Records(step)
			if err != nil {
				return err
			}
			for len(recs) > 0 {
				n := r.fit(recs)
				if _, err := r.ask(gctx, peer, syncRequest{Op: "push", Records: recs[:n]}); err != nil {
					return err
				}
				pushed.Add(int64(n))
				recs = recs[n:]
			}
			return nil
		})
	}
	err := g.Wait()
	return int(pushed.Load()), err
}

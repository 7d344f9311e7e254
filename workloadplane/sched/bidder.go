package sched

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Policy decides whether and how much a node wants a pod (the placement
// policy, policies/placement.rego by default).
type Policy interface {
	// Place evaluates the policy for input; a non-empty Verdict.Deny
	// declines. An error means the policy could not be evaluated.
	Place(ctx context.Context, input PolicyInput) (Verdict, error)
}

// PolicyInput is the placement policy's input document.
type PolicyInput struct {
	Pod       *corev1.Pod `json:"pod"`
	Node      NodeInput   `json:"node"`
	Requester string      `json:"requester"`
	Siblings  Siblings    `json:"siblings"`
}

// NodeInput describes the candidate node to the policy.
type NodeInput struct {
	Name        string            `json:"name"`
	Zone        string            `json:"zone,omitempty"`
	Labels      map[string]string `json:"labels"`
	Allocatable Resources         `json:"allocatable"`
	// Free is what is left after bound pods and reservations; Requests is
	// what the pod asks for.
	Free     Resources `json:"free"`
	Requests Resources `json:"requests"`
	// PercentFreeAfter is the share of allocatable CPU and memory left
	// after the pod, in whole percent, so that a policy can score on small
	// integers (OPA's arithmetic on large or fractional numbers goes through
	// big numbers and strings, several microseconds per operation).
	PercentFreeAfter Percentages `json:"percentFreeAfter"`
}

// Percentages are whole percentages, 0 to 100.
type Percentages struct {
	CPU    int64 `json:"cpu"`
	Memory int64 `json:"memory"`
}

// percentLeft is the whole percentage of total that left is, within 0-100
// (0 when total is not positive).
func percentLeft(left, total int64) int64 {
	if total <= 0 || left <= 0 {
		return 0
	}
	return min(100, left*100/total)
}

// Siblings counts the pods of the same workload already on this node and
// in its zone.
type Siblings struct {
	Node int `json:"node"`
	Zone int `json:"zone"`
}

// Verdict is the placement policy's answer.
type Verdict struct {
	Score float64
	Deny  []string
}

// Facts are what a node knows about itself when it bids.
type Facts struct {
	Node        string
	Zone        string
	Labels      map[string]string
	Allocatable Resources
	// Used is what the pods bound to this node request; Bound holds their
	// UIDs (a reservation for a pod in Bound is already counted in Used).
	Used  Resources
	Bound map[types.UID]bool
}

// BidderConfig configures a Bidder.
type BidderConfig struct {
	// Facts reports the node's resources and the pods bound to it; required.
	Facts func() (Facts, error)
	// Policy is the placement policy; required.
	Policy Policy
	// MaxLease caps how long a confirmed award holds resources unbound;
	// zero means 15s.
	MaxLease time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil discards.
	Logger *slog.Logger
}

// Bidder answers tenders and awards for one node.
type Bidder struct {
	cfg    BidderConfig
	mu     sync.Mutex
	bids   map[string]openBid  // by tender ID
	leases map[types.UID]lease // by pod UID
	sweep  time.Time           // when expired bids are next dropped
}

type openBid struct {
	owner   string
	pod     types.UID
	req     Resources
	expires time.Time
}

type lease struct {
	req   Resources
	until time.Time
}

// NewBidder returns a Bidder.
func NewBidder(cfg BidderConfig) (*Bidder, error) {
	if cfg.Facts == nil || cfg.Policy == nil {
		return nil, errors.New("sched: BidderConfig.Facts and Policy are required")
	}
	if cfg.MaxLease == 0 {
		cfg.MaxLease = 15 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Bidder{cfg: cfg, bids: map[string]openBid{}, leases: map[types.UID]lease{}}, nil
}

// Free is what this node has left for new pods, and its facts.
func (b *Bidder) Free() (Resources, Facts, error) {
	f, err := b.cfg.Facts()
	if err != nil {
		return Resources{}, f, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.freeLocked(f), f, nil
}

// freeLocked drops expired leases and leases whose pod is bound (counted
// in f.Used), and returns what is left.
func (b *Bidder) freeLocked(f Facts) Resources {
	now := b.cfg.Now()
	free := f.Allocatable.Sub(f.Used)
	for uid, l := range b.leases {
		if f.Bound[uid] || !now.Before(l.until) {
			delete(b.leases, uid)
			continue
		}
		free = free.Sub(l.req)
	}
	return free
}

// shortfall names the resources free lacks for req.
func shortfall(free, req Resources) []string {
	var out []string
	if req.MilliCPU > free.MilliCPU {
		out = append(out, "insufficient cpu")
	}
	if req.MemoryBytes > free.MemoryBytes {
		out = append(out, "insufficient memory")
	}
	if req.Pods > free.Pods {
		out = append(out, "too many pods")
	}
	return out
}

// OnTender answers a tender from the owner peer from: a Bid, or a Decline
// with every reason that applies.
func (b *Bidder) OnTender(ctx context.Context, from string, t Tender) Reply {
	f, err := b.cfg.Facts()
	reply := Reply{Tender: t.ID, Node: f.Node, Type: TypeDecline}
	switch {
	case err != nil:
		reply.Reasons = []string{"node cannot report its resources: " + err.Error()}
		return reply
	case t.Pod == nil || t.Owner != from:
		reply.Reasons = []string{"malformed tender"}
		return reply
	case !b.cfg.Now().Before(time.Unix(0, t.Expires)):
		reply.Reasons = []string{"tender expired"}
		return reply
	}
	req := Requests(t.Pod)
	b.mu.Lock()
	if now := b.cfg.Now(); !now.Before(b.sweep) {
		// Bids never awarded are dropped once they expire, in a sweep at
		// most every second rather than at every tender (a busy node holds
		// thousands of open bids); OnAward checks expiry itself.
		for id, bid := range b.bids {
			if !now.Before(bid.expires) {
				delete(b.bids, id)
			}
		}
		b.sweep = now.Add(time.Second)
	}
	free := b.freeLocked(f)
	if l, held := b.leases[t.Pod.UID]; held {
		free = free.Add(l.req) // a new owner re-tendering a pod reserved here
	}
	b.mu.Unlock()
	reply.Reasons = shortfall(free, req)
	v, err := b.cfg.Policy.Place(ctx, PolicyInput{
		Pod: t.Pod, Requester: t.Requester,
		Node: NodeInput{Name: f.Node, Zone: f.Zone, Labels: f.Labels, Allocatable: f.Allocatable, Free: free, Requests: req,
			PercentFreeAfter: Percentages{
				CPU:    percentLeft(free.MilliCPU-req.MilliCPU, f.Allocatable.MilliCPU),
				Memory: percentLeft(free.MemoryBytes-req.MemoryBytes, f.Allocatable.MemoryBytes),
			}},
		Siblings: Siblings{Node: t.Siblings[f.Node], Zone: t.ZoneSiblings[f.Zone]},
	})
	if err != nil {
		b.cfg.Logger.Warn("placement policy failed", "err", err)
		reply.Reasons = append(reply.Reasons, "placement policy failed: "+err.Error())
	}
	for _, d := range v.Deny {
		reply.Reasons = append(reply.Reasons, "denied by placement policy: "+d)
	}
	if len(reply.Reasons) > 0 {
		return reply
	}
	b.mu.Lock()
	b.bids[t.ID] = openBid{owner: from, pod: t.Pod.UID, req: req, expires: time.Unix(0, t.Expires)}
	b.mu.Unlock()
	return Reply{Tender: t.ID, Node: f.Node, Type: TypeBid, Score: v.Score}
}

// OnAward answers an award from from: a Confirm once the pod's resources
// are reserved, or a Decline when they are no longer free or the tender has
// expired. An award for a tender this node has no open bid on (or from
// another owner) fails with ErrUnknownTender.
func (b *Bidder) OnAward(from string, a Award) (Reply, error) {
	f, err := b.cfg.Facts()
	if err != nil {
		return Reply{}, fmt.Errorf("award %s: %w", a.Tender, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	bid, ok := b.bids[a.Tender]
	if !ok || bid.owner != from || bid.pod != a.Pod {
		return Reply{}, fmt.Errorf("award %s from %s: %w", a.Tender, from, ErrUnknownTender)
	}
	delete(b.bids, a.Tender)
	reply := Reply{Tender: a.Tender, Node: f.Node, Type: TypeDecline}
	now := b.cfg.Now()
	if !now.Before(bid.expires) {
		reply.Reasons = []string{"tender expired"}
		return reply, nil
	}
	if _, held := b.leases[a.Pod]; !held && !f.Bound[a.Pod] {
		if short := shortfall(b.freeLocked(f), bid.req); len(short) > 0 {
			reply.Reasons = short
			return reply, nil
		}
	}
	until := time.Unix(0, a.LeaseUntil)
	if limit := now.Add(b.cfg.MaxLease); until.After(limit) {
		until = limit
	}
	b.leases[a.Pod] = lease{req: bid.req, until: until}
	reply.Type = TypeConfirm
	return reply, nil
}

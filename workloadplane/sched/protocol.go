package sched

import (
	"context"
	"errors"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Envelope types of the negotiation messages (see docs/protocols.md).
const (
	TypeTender  = "sched.tender"
	TypeBid     = "sched.bid"
	TypeDecline = "sched.decline"
	TypeAward   = "sched.award"
	TypeConfirm = "sched.confirm"
)

// Errors of the negotiation.
var (
	// ErrNoCandidates means no node passed the owner's filters.
	ErrNoCandidates = errors.New("sched: no candidates")
	// ErrUnknownTender means an award names a tender this node never bid on
	// (forged, replayed after expiry, or sent to the wrong node).
	ErrUnknownTender = errors.New("sched: award for a tender this node did not bid on")
)

// Tender asks a candidate whether it would run a pod.
type Tender struct {
	// ID names this tender; the owner never reuses one.
	ID string `json:"id"`
	// Owner is the peer ID of the owner that sends it.
	Owner string `json:"owner"`
	// Requester is the owner's SPIFFE ID, given to the placement policy.
	Requester string `json:"requester"`
	// Pod is the pod to place, as the owner sees it, without
	// metadata.managedFields.
	Pod *corev1.Pod `json:"pod"`
	// Siblings counts the pods of the same workload on each node name, and
	// ZoneSiblings in each zone, as the owner knows them (its own awards
	// included), so candidates can score for spread.
	Siblings     map[string]int `json:"siblings,omitempty"`
	ZoneSiblings map[string]int `json:"zoneSiblings,omitempty"`
	// Expires (Unix nanoseconds) ends the tender: later awards are refused.
	Expires int64 `json:"expires"`
}

// Reply is a candidate's answer to a tender or an award: a Bid (Score set,
// no Reasons), a Decline (Reasons), or a Confirm.
type Reply struct {
	Tender string `json:"tender"`
	// Node is the candidate's node name.
	Node string `json:"node"`
	// Type is TypeBid, TypeDecline or TypeConfirm.
	Type    string   `json:"type"`
	Score   float64  `json:"score,omitempty"`
	Reasons []string `json:"reasons,omitempty"`
}

// Award tells the best bidder it won; it answers with a Confirm once it has
// reserved the pod's resources until LeaseUntil, or with a Decline.
type Award struct {
	Tender string    `json:"tender"`
	Pod    types.UID `json:"pod"`
	// LeaseUntil (Unix nanoseconds) is how long the winner holds the
	// reservation while the owner binds the pod.
	LeaseUntil int64 `json:"leaseUntil"`
}

// Transport carries negotiation messages from an owner to candidates (by
// peer ID) and returns their answers. Implementations are safe for
// concurrent use.
type Transport interface {
	// Tender sends the same tender to every peer at once and returns their
	// answers in the order of peers; an answer's Err is set where no reply
	// came before ctx ended.
	Tender(ctx context.Context, peers []string, t Tender) []Answer
	// Award sends a to peer and returns its answer, or an error when none
	// came before ctx ended.
	Award(ctx context.Context, peer string, a Award) (Reply, error)
}

// Answer is one candidate's answer to a tender. A transport may deliver
// the reply before checking its signature, with verify to do so: the owner
// verifies a reply before it acts on it, and never verifies the ones it
// does not use (the losing bids; the declines of a pod that was placed).
type Answer struct {
	Reply  Reply
	Err    error
	verify func() error
}

// check is nil when the answer came and is authentic.
func (a Answer) check() error {
	if a.Err != nil || a.verify == nil {
		return a.Err
	}
	return a.verify()
}

// Resources are the amounts a pod requests or a node has free.
type Resources struct {
	MilliCPU    int64 `json:"milliCPU"`
	MemoryBytes int64 `json:"memoryBytes"`
	Pods        int64 `json:"pods"`
}

// Sub returns r minus o.
func (r Resources) Sub(o Resources) Resources {
	return Resources{MilliCPU: r.MilliCPU - o.MilliCPU, MemoryBytes: r.MemoryBytes - o.MemoryBytes, Pods: r.Pods - o.Pods}
}

// Add returns r plus o.
func (r Resources) Add(o Resources) Resources {
	return Resources{MilliCPU: r.MilliCPU + o.MilliCPU, MemoryBytes: r.MemoryBytes + o.MemoryBytes, Pods: r.Pods + o.Pods}
}

// Requests is what a pod asks for: the sum of its containers' requests (or
// limits, where only limits are set) and one pod slot.
func Requests(p *corev1.Pod) Resources {
	r := Resources{Pods: 1}
	for _, c := range p.Spec.Containers {
		cpu, mem := c.Resources.Requests[corev1.ResourceCPU], c.Resources.Requests[corev1.ResourceMemory]
		if cpu.IsZero() {
			cpu = c.Resources.Limits[corev1.ResourceCPU]
		}
		if mem.IsZero() {
			mem = c.Resources.Limits[corev1.ResourceMemory]
		}
		r.MilliCPU += cpu.MilliValue()
		r.MemoryBytes += mem.Value()
	}
	return r
}

// Allocatable reads a node's allocatable resources.
func Allocatable(n *corev1.Node) Resources {
	a := n.Status.Allocatable
	return Resources{MilliCPU: a.Cpu().MilliValue(), MemoryBytes: a.Memory().Value(), Pods: a.Pods().Value()}
}

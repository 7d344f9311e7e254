package sched

import (
	"maps"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Ledger is a node's running account of the pods bound to it: the
// requests of those still active (not Succeeded or Failed) and their UIDs.
// It is kept up to date from the pods' changes (Observe, Forget), so a
// tender costs a lookup rather than a list of every pod in the fabric. It
// is the one resource accounting of a node, shared by the real bidder and
// the simulator, and safe for concurrent use.
type Ledger struct {
	node string

	mu     sync.Mutex
	synced bool
	reqs   map[types.UID]Resources
	used   Resources
	// bound is replaced, never changed, when the set of pods changes, so
	// Usage can hand it out without a copy.
	bound map[types.UID]bool
}

// NewLedger returns an empty account for node.
func NewLedger(node string) *Ledger {
	return &Ledger{node: node, reqs: map[types.UID]Resources{}, bound: map[types.UID]bool{}}
}

// Reset replaces the account with pods (a full list) and marks it synced.
func (l *Ledger) Reset(pods []corev1.Pod) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs, l.used, l.bound = map[types.UID]Resources{}, Resources{}, map[types.UID]bool{}
	for i := range pods {
		l.observeLocked(&pods[i])
	}
	l.synced = true
}

// Observe records a pod's current state.
func (l *Ledger) Observe(p *corev1.Pod) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.observeLocked(p)
}

func (l *Ledger) observeLocked(p *corev1.Pod) {
	if p.Spec.NodeName != l.node || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		l.forgetLocked(p.UID)
		return
	}
	r := Requests(p)
	old, had := l.reqs[p.UID]
	l.used = l.used.Sub(old).Add(r)
	l.reqs[p.UID] = r
	if !had {
		l.bound = maps.Clone(l.bound)
		l.bound[p.UID] = true
	}
}

// Forget drops a deleted pod.
func (l *Ledger) Forget(uid types.UID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forgetLocked(uid)
}

func (l *Ledger) forgetLocked(uid types.UID) {
	old, had := l.reqs[uid]
	if !had {
		return
	}
	l.used = l.used.Sub(old)
	delete(l.reqs, uid)
	l.bound = maps.Clone(l.bound)
	delete(l.bound, uid)
}

// Usage is what the node's active pods request and their UIDs (which the
// caller must not modify); synced is false until the first Reset.
func (l *Ledger) Usage() (used Resources, bound map[types.UID]bool, synced bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.used, l.bound, l.synced
}

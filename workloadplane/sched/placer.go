package sched

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// PlacerConfig configures a Placer.
type PlacerConfig struct {
	// Self is the owner's peer ID; required. Requester is its SPIFFE ID,
	// given to candidates' placement policies.
	Self, Requester string
	// Transport carries tenders and awards; required.
	Transport Transport
	// Sample is d, the most candidates one round tenders to; zero means 3.
	Sample int
	// TenderTTL is how long a bid stays open for an award; zero means 5s.
	TenderTTL time.Duration
	// Lease is how long a winner holds resources for the owner to bind;
	// zero means 10s.
	Lease time.Duration
	// Timeout bounds each exchange with the candidates (all tenders of a
	// round at once, then each award); zero means 2s.
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Placer runs negotiations for the pods this node owns.
type Placer struct {
	cfg PlacerConfig
	mu  sync.Mutex
	seq uint64
}

// NewPlacer returns a Placer.
func NewPlacer(cfg PlacerConfig) (*Placer, error) {
	if cfg.Self == "" || cfg.Transport == nil {
		return nil, errors.New("sched: PlacerConfig.Self and Transport are required")
	}
	if cfg.Sample == 0 {
		cfg.Sample = 3
	}
	if cfg.Sample < 1 {
		return nil, fmt.Errorf("sched: sample size %d must be at least 1", cfg.Sample)
	}
	if cfg.TenderTTL == 0 {
		cfg.TenderTTL = 5 * time.Second
	}
	if cfg.Lease == 0 {
		cfg.Lease = 10 * time.Second
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Placer{cfg: cfg}, nil
}

// Spread is where a workload's pods already are, as the owner knows it.
type Spread struct {
	Nodes map[string]int
	Zones map[string]int
}

// Outcome is the result of one negotiation.
type Outcome struct {
	// Node won and confirmed; empty when the pod was not placed.
	Node string
	// Asked counts the candidates tendered to; Reasons counts the
	// candidates that did not answer and, when the pod was not placed, why
	// the others declined (a placed pod's declines are never verified, as
	// nothing uses them).
	Asked   int
	Reasons Reasons
	// Messages counts the messages sent and received.
	Messages int
}

// Place negotiates a node for pod among cands (already filtered): it
// tenders to a sample of at most d of them, awards the best bid, and moves
// to the next bid when an award is not confirmed.
func (p *Placer) Place(ctx context.Context, pod *corev1.Pod, cands []Candidate, spread Spread) Outcome {
	p.mu.Lock()
	p.seq++
	seq := p.seq
	p.mu.Unlock()
	sample := p.sample(pod, cands, seq)
	lean := *pod // the tender carries the pod without its field-management bookkeeping
	lean.ManagedFields = nil
	t := Tender{
		ID: fmt.Sprintf("%s/%s/%d", p.cfg.Self, pod.UID, seq), Owner: p.cfg.Self, Requester: p.cfg.Requester,
		Pod: &lean, Siblings: spread.Nodes, ZoneSiblings: spread.Zones,
		Expires: p.cfg.Now().Add(p.cfg.TenderTTL).UnixNano(),
	}
	out := Outcome{Asked: len(sample), Reasons: Reasons{}, Messages: 2 * len(sample)}
	peers := make([]string, len(sample))
	for i, c := range sample {
		peers[i] = c.Peer
	}
	tctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	answers := p.cfg.Transport.Tender(tctx, peers, t)
	cancel()
	// Replies are checked (their tender and node, then their signature)
	// only as they are used: bids best first until one is awarded, declines
	// only if the pod is not placed, since only then are their reasons told.
	noAnswer := "node(s) did not answer the tender"
	usable := func(i int) bool {
		r := answers[i].Reply
		if err := answers[i].check(); err != nil || r.Tender != t.ID || r.Node != sample[i].Node {
			out.Reasons[noAnswer]++
			return false
		}
		return true
	}
	var bids, declines []int
	for i, a := range answers {
		switch {
		case a.Err != nil:
			out.Reasons[noAnswer]++
		case a.Reply.Type == TypeBid:
			bids = append(bids, i)
		default:
			declines = append(declines, i)
		}
	}
	sort.SliceStable(bids, func(a, b int) bool {
		ra, rb := answers[bids[a]].Reply, answers[bids[b]].Reply
		if ra.Score != rb.Score {
			return ra.Score > rb.Score
		}
		return tie(pod, ra.Node) > tie(pod, rb.Node)
	})
	for _, i := range bids {
		if !usable(i) {
			continue
		}
		c := sample[i]
		a := Award{Tender: t.ID, Pod: pod.UID, LeaseUntil: p.cfg.Now().Add(p.cfg.Lease).UnixNano()}
		actx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
		r, err := p.cfg.Transport.Award(actx, c.Peer, a)
		cancel()
		out.Messages += 2
		switch {
		case err == nil && r.Type == TypeConfirm && r.Tender == t.ID && r.Node == c.Node:
			out.Node = c.Node
			return out
		case err == nil && r.Type == TypeDecline:
			for _, why := range r.Reasons {
				out.Reasons[why+" (after bidding)"]++
			}
		default:
			out.Reasons["node(s) did not confirm the award"]++
		}
	}
	for _, i := range declines {
		if usable(i) {
			for _, why := range answers[i].Reply.Reasons {
				out.Reasons[why]++
			}
		}
	}
	return out
}

// sample picks at most d candidates uniformly, with a generator seeded by
// the pod and the round, so each pod and each retry sees its own sample and
// a script sees the same one every run (power of d choices). It is the
// first d steps of a Fisher-Yates shuffle, done sparsely: the candidate list
// is neither copied nor changed, so the cost is d draws whatever the
// fabric's size.
func (p *Placer) sample(pod *corev1.Pod, cands []Candidate, seq uint64) []Candidate {
	if len(cands) <= p.cfg.Sample {
		return cands
	}
	r := rand.New(rand.NewPCG(hash(string(pod.UID)), seq))
	moved := make(map[int]int, 2*p.cfg.Sample) // position → index of the candidate the shuffle put there
	at := func(i int) int {
		if v, ok := moved[i]; ok {
			return v
		}
		return i
	}
	out := make([]Candidate, p.cfg.Sample)
	for i := range out {
		j := i + r.IntN(len(cands)-i)
		vi, vj := at(i), at(j)
		moved[i], moved[j] = vj, vi
		out[i] = cands[vj]
	}
	return out
}

// tie breaks equal scores the same way on every owner.
func tie(pod *corev1.Pod, node string) uint64 {
	return hash(string(pod.UID) + "\x00" + node)
}

func hash(s string) uint64 {
	h := sha256.Sum256([]byte(s))
	return binary.BigEndian.Uint64(h[:8])
}

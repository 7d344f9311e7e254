package mycel

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/workloadplane/agent"
	"github.com/mycelfabric/mycel/workloadplane/objects"
	"github.com/mycelfabric/mycel/workloadplane/sched"
)

// startBidder builds the node's bidder and the transport that answers
// tenders and awards with it.
func (n *Node) startBidder(context.Context) error {
	n.pods = sched.NewLedger(n.cfg.Name)
	bidder, err := sched.NewBidder(sched.BidderConfig{Facts: n.placementFacts, Policy: sched.OPA(n.policy), Now: n.cfg.Now,
		Logger: n.log.With("component", "bidder")})
	if err != nil {
		return err
	}
	rejected, err := sched.NewRejectedAwards(n.reg)
	if err != nil {
		return err
	}
	n.transport = &sched.BusTransport{Conn: n.bus.Client(), Key: n.id.Key, Self: n.PeerID(), Opener: n.opener(),
		Bidder: bidder, Rejected: rejected, Logger: n.log.With("component", "sched")}
	return nil
}

// serveBids keeps the node's pod ledger from the store's pods and answers
// tenders and awards.
func (n *Node) serveBids(ctx context.Context) {
	pods, err := n.objs.ResourceOf(&corev1.Pod{})
	if err != nil {
		n.log.Error("placement: no pods resource", "err", err)
		return
	}
	log := n.log.With("component", "bidder")
	go n.objs.In(pods).Follow(ctx, "", func(all []objects.Object) {
		list := make([]corev1.Pod, len(all))
		for i, o := range all {
			list[i] = *o.(*corev1.Pod)
		}
		n.pods.Reset(list)
	}, func(ev objects.Event) {
		p := ev.Object.(*corev1.Pod)
		if ev.Type == objects.Deleted {
			n.pods.Forget(p.UID)
			return
		}
		n.pods.Observe(p)
	}, func(err error) { log.Warn("pod ledger: list or watch of pods failed; listing again", "err", err) })
	if err := n.transport.Serve(ctx); err != nil {
		n.log.Error("placement transport stopped", "err", err)
	}
}

// startScheduler builds the scheduler that places the pods this node owns.
func (n *Node) startScheduler(context.Context) error {
	spiffeID, err := ca.NodeID(n.creds.Bundle().TrustDomain(), n.PeerID())
	if err != nil {
		return err
	}
	placer, err := sched.NewPlacer(sched.PlacerConfig{Self: n.PeerID(), Requester: spiffeID.String(), Transport: n.transport,
		Sample: n.cfg.PlacementSample, Now: n.cfg.Now})
	if err != nil {
		return err
	}
	metrics, err := sched.NewMetrics(n.reg)
	if err != nil {
		return err
	}
	n.scheduler, err = sched.New(sched.Config{Client: n.objs, Placer: placer, Owns: n.owners.Owns, Members: placementMembers{n},
		Metrics: metrics, Now: n.cfg.Now, Logger: n.log.With("component", "sched")})
	return err
}

// placementMembers adapts membership to placement: who is live (this node
// included), since when the dead are, and the versions of each member's
// verified record (this node's own for itself).
type placementMembers struct{ n *Node }

func (m placementMembers) Live(peer string) bool {
	return m.n.members.IsLive(peer)
}

func (m placementMembers) Versions(peer string) map[string]string {
	r := m.n.members.Record(peer)
	if peer == m.n.PeerID() {
		r = m.n.records.Record()
	}
	if r == nil {
		return nil
	}
	return r.Versions
}

func (m placementMembers) Death(peer string) (time.Time, bool, bool) {
	return m.n.members.Death(peer)
}

// placementFacts are this node's resources and the pods bound to it, as the
// bidder sees them: allocatable and labels from its record, used from its
// ledger of active pods.
func (n *Node) placementFacts() (sched.Facts, error) {
	rec := n.records.Record()
	node := &corev1.Node{Status: corev1.NodeStatus{Allocatable: agent.ResourceList(rec.Allocatable)}}
	f := sched.Facts{Node: n.cfg.Name, Zone: rec.Zone, Labels: agent.NodeLabels(rec), Allocatable: sched.Allocatable(node)}
	var synced bool
	if f.Used, f.Bound, synced = n.pods.Usage(); !synced {
		return f, errors.New("its pods are not loaded yet")
	}
	return f, nil
}

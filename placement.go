package mycel

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/workloadplane/agent"
	"github.com/mycelfabric/mycel/workloadplane/sched"
)

// startBidder builds the node's bidder and the transport that answers
// tenders and awards with it.
func (n *Node) startBidder(context.Context) error {
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

func (n *Node) serveBids(ctx context.Context) {
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
// bidder sees them: allocatable and labels from its record, used from the
// requests of its active pods.
func (n *Node) placementFacts() (sched.Facts, error) {
	rec := n.records.Record()
	node := &corev1.Node{Status: corev1.NodeStatus{Allocatable: agent.ResourceList(rec.Allocatable)}}
	f := sched.Facts{Node: n.cfg.Name, Zone: rec.Zone, Labels: agent.NodeLabels(rec), Allocatable: sched.Allocatable(node)}
	var pods corev1.PodList
	if err := n.objs.List(context.Background(), &pods, "", nil); err != nil {
		return f, fmt.Errorf("list pods: %w", err)
	}
	f.Used, f.Bound = sched.Usage(n.cfg.Name, pods.Items)
	return f, nil
}

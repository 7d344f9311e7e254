package mycel

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"

	"github.com/mycelfabric/mycel/machineplane/bus"
	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/securityplane/policy"
	"github.com/mycelfabric/mycel/workloadplane/agent"
	"github.com/mycelfabric/mycel/workloadplane/sched"
)

// placement is the node's part in placement: its bidder answers tenders
// over the bus, and its scheduler places the pods it owns.
type placement struct {
	transport *sched.BusTransport
	scheduler *sched.Scheduler
}

// startPlacement builds the node's bidder, transport and scheduler; run
// them with runPlacement.
func (n *Node) startPlacement(reg prometheus.Registerer, engine *policy.Engine) (*placement, error) {
	bidder, err := sched.NewBidder(sched.BidderConfig{Facts: n.placementFacts, Policy: sched.OPA(engine),
		Logger: n.log.With("component", "bidder")})
	if err != nil {
		return nil, err
	}
	rejected, err := sched.NewRejectedAwards(reg)
	if err != nil {
		return nil, err
	}
	tr := &sched.BusTransport{Conn: bus.NATS(n.bus.Conn()), Key: n.id.Key, Self: n.id.ID.String(), Opener: n.opener(),
		Bidder: bidder, Rejected: rejected, Logger: n.log.With("component", "sched")}
	spiffeID, err := ca.NodeID(n.creds.Bundle().TrustDomain(), n.id.ID.String())
	if err != nil {
		return nil, err
	}
	placer, err := sched.NewPlacer(sched.PlacerConfig{Self: n.id.ID.String(), Requester: spiffeID.String(), Transport: tr, Sample: n.cfg.PlacementSample})
	if err != nil {
		return nil, err
	}
	metrics, err := sched.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	s, err := sched.New(sched.Config{Client: n.objs, Placer: placer, Owns: n.owners.Owns, Live: n.isLive, DeadSince: n.members.DeadSince, Metrics: metrics, Logger: n.log.With("component", "sched")})
	if err != nil {
		return nil, err
	}
	return &placement{transport: tr, scheduler: s}, nil
}

func (n *Node) runPlacement(ctx context.Context, p *placement) {
	n.goRun(func() {
		if err := p.transport.Serve(ctx); err != nil {
			n.log.Error("placement transport stopped", "err", err)
		}
	})
	n.goRun(func() { p.scheduler.Run(ctx) })
}

// isLive reports whether peer is a live member (this node included).
func (n *Node) isLive(peer string) bool {
	for _, id := range n.members.Live() {
		if id == peer {
			return true
		}
	}
	return false
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

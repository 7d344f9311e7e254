package mycel

import (
	"context"

	corev1 "k8s.io/api/core/v1"

	mycelv1alpha1 "github.com/mycelfabric/mycel/api/mycel/v1alpha1"
	"github.com/mycelfabric/mycel/machineplane/bus"
	"github.com/mycelfabric/mycel/machineplane/membership"
	"github.com/mycelfabric/mycel/machineplane/noderecord"
	"github.com/mycelfabric/mycel/securityplane/envelope"
	"github.com/mycelfabric/mycel/workloadplane/controller"
	"github.com/mycelfabric/mycel/workloadplane/owner"
	"github.com/mycelfabric/mycel/workloadplane/replica"
)

// startMembership sets up the failure detector over the bus; members are
// learned from announcements of verified node records.
func (n *Node) startMembership(context.Context) error {
	var err error
	if n.rejected, err = envelope.NewRejectedCounter(n.reg); err != nil {
		return err
	}
	events, err := membership.NewEventCounter(n.reg)
	if err != nil {
		return err
	}
	verifier := &noderecord.Verifier{Bundle: n.creds.Bundle()}
	timing := membership.Presets[n.cfg.FailureDetection]
	if n.cfg.MembershipTick != 0 {
		timing.Tick = n.cfg.MembershipTick
	}
	n.members, err = membership.NewService(membership.ServiceConfig{
		Conn: n.bus.Client(), Key: n.id.Key, Self: n.PeerID(),
		Record: n.records.Signed,
		Verify: func(id string, signed []byte) (*noderecord.Record, error) {
			return verifier.Verify("/"+noderecord.Namespace+"/"+id, signed)
		},
		Tick: timing.Tick, Protocol: timing.Protocol, Rejected: n.rejected, Events: events, Now: n.cfg.Now,
		Logger: n.log.With("component", "membership"),
	})
	if err != nil {
		return err
	}
	n.members.Subscribe(n.onMembership)
	return nil
}

// onMembership catches up with members just met (what they wrote before
// this node knew them was refused) and kicks whatever depends on who is
// alive.
func (n *Node) onMembership(e membership.Event) {
	if e.Kind == membership.NodeJoined {
		n.repl.SyncSoon(e.Member)
	}
	n.kick()
}

// kick makes the owner-based components look again now.
func (n *Node) kick() {
	n.ctrl.Kick()
	n.scheduler.Kick()
	n.nodes.Kick()
}

func (n *Node) runMembership(ctx context.Context) {
	if err := n.members.Run(ctx); err != nil {
		n.log.Error("membership stopped", "err", err)
	}
}

// opener checks the messages of one protocol (each keeps its own replay
// cache): from verified members, as large as the bus carries (objects as
// large as the API accepts), counted by reason when rejected.
func (n *Node) opener() *envelope.Opener {
	return &envelope.Opener{Known: n.members.Known, Rejected: n.rejected, MaxSize: bus.MaxPayload, Now: n.cfg.Now}
}

func (n *Node) startReplication(context.Context) (err error) {
	n.repl, err = replica.New(replica.Config{
		Store: n.store, Conn: n.bus.Client(), Key: n.id.Key, Self: n.PeerID(), Opener: n.opener(),
		Peers: n.owners.Peers, Interval: n.cfg.AntiEntropyInterval, Now: n.cfg.Now,
		Logger: n.log.With("component", "replica"), Registry: n.reg,
	})
	return err
}

func (n *Node) runReplication(ctx context.Context) {
	if err := n.repl.Run(ctx); err != nil {
		n.log.Error("replication stopped", "err", err)
	}
}

func (n *Node) startOwnership(context.Context) error {
	n.owners = owner.NewTable(n.PeerID(), n.members)
	return nil
}

// settle settles the ownership table, then kicks whatever depends on
// ownership.
func (n *Node) settle(ctx context.Context) {
	n.owners.Settle(ctx, owner.SettleConfig{
		Joining: len(n.peersToJoin()) > 0 || n.knewOthers(),
		CatchUp: n.repl.SyncWith, Logger: n.log.With("component", "owner"),
	})
	if n.owners.Settled() {
		n.kick()
	}
}

// knewOthers reports whether the store holds other nodes' Node objects:
// this node has been part of a fabric.
func (n *Node) knewOthers() bool {
	var nodes corev1.NodeList
	if err := n.objs.List(context.Background(), &nodes, "", nil); err != nil {
		return false
	}
	for _, node := range nodes.Items {
		if p := node.Labels[mycelv1alpha1.LabelPeerID]; p != "" && p != n.id.ID.String() {
			return true
		}
	}
	return false
}

// liveness adapts membership to the node-lifecycle controller.
type liveness struct {
	self    string
	members *membership.Service
}

func (l liveness) State(peer string) controller.MemberState {
	st, known := l.members.State(peer)
	switch {
	case peer == l.self:
		return controller.MemberAlive
	case !known:
		return controller.MemberUnknown
	case st == membership.Dead:
		return controller.MemberDead
	case st == membership.Left:
		return controller.MemberLeft
	}
	return controller.MemberAlive
}

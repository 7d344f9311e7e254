package controller

import (
	"context"
	"errors"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	mycelv1alpha1 "github.com/mycelfabric/mycel/api/mycel/v1alpha1"
	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// MemberState is what membership holds about a node's peer.
type MemberState int

// Member states the node-lifecycle controller tells apart.
const (
	// MemberUnknown: never met here.
	MemberUnknown MemberState = iota
	// MemberAlive: alive or suspected (a suspicion is not a death).
	MemberAlive
	// MemberDead: declared dead.
	MemberDead
	// MemberLeft: left the fabric on purpose (it was stopped).
	MemberLeft
)

// Liveness is what the node-lifecycle controller knows of members.
type Liveness interface {
	// State is membership's view of peer.
	State(peer string) MemberState
}

// NodeLifecycleConfig configures a NodeLifecycle.
type NodeLifecycleConfig struct {
	// Client reads and writes Nodes; Liveness says which are alive; both
	// required.
	Client   Client
	Liveness Liveness
	// Owns reports whether this node reconciles the Node keyed by uid;
	// nil means all.
	Owns func(uid types.UID) bool
	// HeartbeatInterval is how often nodes check their Node; a node not
	// met here within three intervals of this one's start, whose Node was
	// not written for as long, counts as unreachable. Zero means 10s.
	HeartbeatInterval time.Duration
	Logger            *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// NodeLifecycle marks the Nodes of unreachable members Ready=Unknown: those
// membership holds dead or gone, and those that stopped heartbeating
// without ever being met here. A node that comes back writes its own Ready
// again.
type NodeLifecycle struct {
	cfg     NodeLifecycleConfig
	kick    chan struct{}
	started time.Time
}

const lifecycleComponent = "mycel-membership"

// NewNodeLifecycle returns the controller.
func NewNodeLifecycle(cfg NodeLifecycleConfig) (*NodeLifecycle, error) {
	if cfg.Client == nil || cfg.Liveness == nil {
		return nil, errors.New("controller: NodeLifecycleConfig.Client and Liveness are required")
	}
	if cfg.Owns == nil {
		cfg.Owns = func(types.UID) bool { return true }
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &NodeLifecycle{cfg: cfg, kick: make(chan struct{}, 1), started: cfg.Now()}, nil
}

// Kick makes Run look at the Nodes now (membership changed).
func (l *NodeLifecycle) Kick() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Run reconciles on every Kick and every HeartbeatInterval until ctx is
// done.
func (l *NodeLifecycle) Run(ctx context.Context) {
	t := time.NewTicker(l.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		if err := l.Reconcile(ctx); err != nil && ctx.Err() == nil {
			l.cfg.Logger.Warn("mark unreachable nodes", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.kick:
		}
	}
}

// Reconcile marks every unreachable Node this node owns once.
func (l *NodeLifecycle) Reconcile(ctx context.Context) error {
	var nodes corev1.NodeList
	if err := l.cfg.Client.List(ctx, &nodes, "", nil); err != nil {
		return err
	}
	stale := l.cfg.Now().Add(-3 * l.cfg.HeartbeatInterval)
	var errs []error
	for i := range nodes.Items {
		node := &nodes.Items[i]
		peer := node.Labels[mycelv1alpha1.LabelPeerID]
		if peer == "" || !l.cfg.Owns(node.UID) {
			continue
		}
		state := l.cfg.Liveness.State(peer)
		ready := objects.NodeCondition(node, corev1.NodeReady)
		if state == MemberAlive || ready == nil || ready.Status == corev1.ConditionUnknown {
			continue
		}
		reason, msg := "NodeStatusUnknown", "Mycel stopped hearing from this node: membership declared it dead."
		switch {
		case state == MemberLeft:
			reason, msg = "NodeShutdown", "The node left the fabric (it was stopped)."
		case state == MemberUnknown && (ready.LastHeartbeatTime.After(stale) || l.started.After(stale)):
			// Not met here yet, but its last write is recent or this node
			// has not been up long enough to have met every live member.
			continue
		case state == MemberUnknown:
			msg = "Mycel has not heard from this node since its last heartbeat."
		}
		ready.Status, ready.Reason, ready.Message, ready.LastTransitionTime = corev1.ConditionUnknown, reason, msg, metav1.NewTime(l.cfg.Now())
		if err := l.cfg.Client.UpdateStatus(ctx, node); err != nil {
			errs = append(errs, err)
			continue
		}
		l.cfg.Client.Record(ctx, node, lifecycleComponent, corev1.EventTypeNormal, "NodeNotReady", "Node "+node.Name+" status is now: NodeNotReady ("+reason+")")
	}
	return errors.Join(errs...)
}

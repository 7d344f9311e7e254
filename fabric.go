package mycel

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	mycelv1alpha1 "github.com/mycelfabric/mycel/api/mycel/v1alpha1"
	"github.com/mycelfabric/mycel/machineplane/membership"
	"github.com/mycelfabric/mycel/machineplane/noderecord"
	"github.com/mycelfabric/mycel/securityplane/envelope"
	"github.com/mycelfabric/mycel/workloadplane/replica"
)

// StatusPath serves ClusterStatus to authenticated clients.
const StatusPath = "/api/cluster/status"

// settleAfter is how long a starting node listens for members before it
// takes ownership of workloads: long enough for the announcements of a
// running fabric to reach it, so it does not briefly believe it owns
// everything.
const settleAfter = time.Second

// catchUpFor bounds how long a settling node tries to catch up with a peer.
const catchUpFor = 15 * time.Second

// startFabric starts membership and store replication over the bus.
func (n *Node) startFabric(reg prometheus.Registerer) error {
	rejected, err := envelope.NewRejectedCounter(reg)
	if err != nil {
		return err
	}
	events, err := membership.NewEventCounter(reg)
	if err != nil {
		return err
	}
	verifier := &noderecord.Verifier{Bundle: n.creds.Bundle()}
	n.members, err = membership.NewService(membership.ServiceConfig{
		Conn: n.bus.Conn(), Key: n.id.Key, Self: n.id.ID.String(),
		Record: n.records.Signed,
		Verify: func(id string, signed []byte) (string, error) {
			r, err := verifier.Verify("/"+noderecord.Namespace+"/"+id, signed)
			if err != nil {
				return "", err
			}
			return r.Name, nil
		},
		Tick:     n.cfg.MembershipTick,
		OnChange: n.membershipChanged,
		Rejected: rejected,
		Events:   events,
		Logger:   n.log.With("component", "membership"),
	})
	if err != nil {
		return err
	}
	n.repl, err = replica.New(replica.Config{
		Store: n.store, Conn: n.bus.Conn(), Key: n.id.Key, Self: n.id.ID.String(),
		Opener: n.members.Opener(), Peers: n.peers, Interval: n.cfg.AntiEntropyInterval,
		Logger: n.log.With("component", "replica"), Registry: reg,
	})
	return err
}

// peers are the live members other than this node.
func (n *Node) peers() []string {
	var out []string
	for _, id := range n.members.Live() {
		if id != n.id.ID.String() {
			out = append(out, id)
		}
	}
	return out
}

// runFabric runs membership and replication, and settles: once the node
// has listened for members, and caught up with one if there are any, it
// takes its share of workload ownership.
func (n *Node) runFabric(ctx context.Context) {
	n.goRun(func() {
		if err := n.members.Run(ctx); err != nil {
			n.log.Error("membership stopped", "err", err)
		}
	})
	n.goRun(func() {
		if err := n.repl.Run(ctx); err != nil {
			n.log.Error("replication stopped", "err", err)
		}
	})
	n.goRun(func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(settleAfter):
		}
		// A node that was given peers to join through, or that was part of
		// a fabric before it restarted, waits to meet a member, then catches
		// up with it; a peer may refuse until our announcement reaches it,
		// so keep trying for a while. Alone, a restarted node would own
		// every workload and place pods while the fabric still runs them.
		joining := len(n.cfg.Bootstrap)+len(n.creds.Issuers()) > 0 || n.knewOthers()
		var err error
		for deadline := time.Now().Add(catchUpFor); ; {
			peers := n.peers()
			if len(peers) == 0 && joining && time.Now().Before(deadline) {
				err = errors.New("no member of the fabric met yet")
			} else if len(peers) == 0 {
				break
			}
			if len(peers) > 0 {
				if err = n.repl.SyncWith(ctx, peers[0]); err == nil {
					break
				}
			}
			if time.Now().After(deadline) {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
		if err != nil {
			n.log.Warn("could not catch up with a peer before taking ownership; anti-entropy continues", "err", err)
		}
		close(n.settledCh)
		n.log.Info("settled: taking a share of workload ownership", "members", len(n.members.Live()))
		n.membershipChanged()
	})
}

// settled reports whether the node has settled (see runFabric).
func (n *Node) settled() bool {
	select {
	case <-n.settledCh:
		return true
	default:
		return false
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

// owns reports whether this node is the owner of the workload keyed by uid.
func (n *Node) owns(uid types.UID) bool {
	return n.settled() && membership.Owner(string(uid), n.members.Live()) == n.id.ID.String()
}

// membershipChanged re-runs whatever depends on who is alive, and catches
// up with members just met: what they wrote before this node knew them was
// refused.
func (n *Node) membershipChanged() {
	n.liveMu.Lock()
	was := n.wasLive
	n.wasLive = map[string]bool{}
	for _, id := range n.members.Live() {
		n.wasLive[id] = true
		if !was[id] && id != n.id.ID.String() {
			n.repl.SyncSoon(id)
		}
	}
	n.liveMu.Unlock()
	for _, k := range n.kickers {
		k()
	}
}

// markUnreachable sets Ready=Unknown on the Node objects of members this
// node owns (by the Node's UID) that membership holds dead or gone, or that
// stopped heartbeating without ever being seen here. A node that comes back
// writes its own Ready again.
func (n *Node) markUnreachable(ctx context.Context) error {
	if !n.settled() {
		return nil
	}
	state := map[string]string{}
	for _, p := range n.members.Peers() {
		state[p.ID] = p.State
	}
	live := map[string]bool{}
	for _, id := range n.members.Live() {
		live[id] = true
	}
	var nodes corev1.NodeList
	if err := n.objs.List(ctx, &nodes, "", nil); err != nil {
		return err
	}
	stale := time.Now().Add(-3 * n.cfg.HeartbeatInterval)
	var errs []error
	for i := range nodes.Items {
		node := &nodes.Items[i]
		peer := node.Labels[mycelv1alpha1.LabelPeerID]
		if peer == "" || live[peer] || !n.owns(node.UID) {
			continue
		}
		var ready *corev1.NodeCondition
		for j := range node.Status.Conditions {
			if node.Status.Conditions[j].Type == corev1.NodeReady {
				ready = &node.Status.Conditions[j]
			}
		}
		if ready == nil || ready.Status == corev1.ConditionUnknown {
			continue
		}
		reason, msg := "NodeStatusUnknown", "Mycel stopped hearing from this node: membership declared it dead."
		switch st := state[peer]; {
		case st == membership.Left.String():
			reason, msg = "NodeShutdown", "The node left the fabric (it was stopped)."
		case st == "" && ready.LastHeartbeatTime.After(stale):
			continue // not yet met here; its heartbeats are recent
		case st == "":
			msg = "Mycel has not heard from this node since its last heartbeat."
		}
		now := metav1.Now()
		ready.Status, ready.Reason, ready.Message, ready.LastTransitionTime = corev1.ConditionUnknown, reason, msg, now
		if err := n.objs.UpdateStatus(ctx, node); err != nil {
			errs = append(errs, err)
			continue
		}
		n.objs.Record(ctx, node, "mycel-membership", corev1.EventTypeNormal, "NodeNotReady", "Node "+node.Name+" status is now: NodeNotReady ("+reason+")")
	}
	return errors.Join(errs...)
}

// ClusterStatus is what /api/cluster/status and `mycel status` show: the
// fabric as this node sees it.
type ClusterStatus struct {
	Node        string            `json:"node"`
	PeerID      string            `json:"peerID"`
	State       string            `json:"state"`
	Settled     bool              `json:"settled"`
	Clock       string            `json:"clock"`
	Objects     int               `json:"objects"`
	Members     int               `json:"liveMembers"`
	Peers       []membership.Peer `json:"peers"`
	BusRoutes   int               `json:"busRoutes"`
	GeneratedAt time.Time         `json:"generatedAt"`
}

// Status reports the fabric as this node sees it.
func (n *Node) Status() ClusterStatus {
	st := ClusterStatus{
		Node: n.cfg.Name, PeerID: n.id.ID.String(), State: "Alive", Settled: n.settled(),
		Clock: n.store.Clock().Last().String(), Objects: n.store.Len(), Members: len(n.members.Live()),
		Peers: n.members.Peers(), BusRoutes: n.bus.Routes(), GeneratedAt: time.Now().UTC(),
	}
	if st.Peers == nil {
		st.Peers = []membership.Peer{}
	}
	return st
}

func (n *Node) serveStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "only GET", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(n.Status())
}

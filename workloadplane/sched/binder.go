// Package sched binds pods to nodes. The Binder here is the interim
// placement of a multi-node fabric: the owner of a pod's controller (see
// membership.Owner) binds it to the Ready node that matches its
// nodeSelector and runs the fewest pods. The signed tender/bid/award
// negotiation replaces it.
package sched

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mycelfabric/mycel/kubeapi"
)

// LabelUnschedulable on a node keeps new pods off it.
const LabelUnschedulable = "mycel.io/unschedulable"

// Client is the object access the Binder needs.
type Client interface {
	List(ctx context.Context, list runtime.Object, namespace string, sel labels.Selector) error
	Update(ctx context.Context, obj kubeapi.Object) error
	UpdateStatus(ctx context.Context, obj kubeapi.Object) error
	Record(ctx context.Context, obj kubeapi.Object, component, eventType, reason, message string) error
	Notify(ctx context.Context, resource string, kick chan<- struct{})
}

// Config configures a Binder.
type Config struct {
	Client Client
	// Owns reports whether this node binds pods keyed by uid (the pod's
	// controller's UID, or its own); nil means all.
	Owns   func(uid types.UID) bool
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Binder binds the pods this node owns.
type Binder struct {
	cfg  Config
	kick chan struct{}
}

// New returns a Binder.
func New(cfg Config) (*Binder, error) {
	if cfg.Client == nil {
		return nil, errors.New("sched: Config.Client is required")
	}
	if cfg.Owns == nil {
		cfg.Owns = func(types.UID) bool { return true }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Binder{cfg: cfg, kick: make(chan struct{}, 1)}, nil
}

// Kick makes Run bind now (ownership or membership changed).
func (b *Binder) Kick() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// Run binds pods as they and nodes change until ctx is done.
func (b *Binder) Run(ctx context.Context) {
	resources := []string{"pods", "nodes"}
	done := make(chan struct{}, len(resources))
	for _, res := range resources {
		go func() {
			b.cfg.Client.Notify(ctx, res, b.kick)
			done <- struct{}{}
		}()
	}
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		if err := b.BindAll(ctx); err != nil && ctx.Err() == nil {
			b.cfg.Logger.Warn("bind pods", "err", err)
		}
		select {
		case <-ctx.Done():
			for range resources {
				<-done
			}
			return
		case <-b.kick:
		case <-t.C:
		}
	}
}

// Key is what decides a pod's owner: its controller's UID, or its own.
func Key(p *corev1.Pod) types.UID {
	for _, r := range p.OwnerReferences {
		if r.Controller != nil && *r.Controller {
			return r.UID
		}
	}
	return p.UID
}

// BindAll binds every unscheduled, undeleted pod this node owns.
func (b *Binder) BindAll(ctx context.Context) error {
	var pods corev1.PodList
	if err := b.cfg.Client.List(ctx, &pods, "", nil); err != nil {
		return err
	}
	var nodes corev1.NodeList
	if err := b.cfg.Client.List(ctx, &nodes, "", nil); err != nil {
		return err
	}
	load := map[string]int{}
	for _, p := range pods.Items {
		if p.Spec.NodeName != "" && p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			load[p.Spec.NodeName]++
		}
	}
	var errs []error
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName != "" || p.DeletionTimestamp != nil || !b.cfg.Owns(Key(p)) {
			continue
		}
		node, why := choose(p, nodes.Items, load)
		if node == "" {
			errs = append(errs, b.unschedulable(ctx, p, why))
			continue
		}
		p.Spec.NodeName = node
		if err := b.cfg.Client.Update(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("bind %s/%s: %w", p.Namespace, p.Name, err))
			continue
		}
		load[node]++
		b.cfg.Client.Record(ctx, p, "mycel-scheduler", corev1.EventTypeNormal, "Scheduled",
			fmt.Sprintf("Successfully assigned %s/%s to %s", p.Namespace, p.Name, node))
	}
	return errors.Join(errs...)
}

// choose picks the Ready, schedulable node matching the pod's nodeSelector
// with the fewest pods (ties broken by a hash of pod and node, so owners
// agree). With none, it says why, as Kubernetes' scheduler does.
func choose(p *corev1.Pod, nodes []corev1.Node, load map[string]int) (string, string) {
	reasons := map[string]int{}
	best, bestLoad, bestTie := "", 0, uint64(0)
	for i := range nodes {
		n := &nodes[i]
		switch {
		case !ready(n):
			reasons["node(s) were not ready"]++
			continue
		case n.Spec.Unschedulable || n.Labels[LabelUnschedulable] == "true":
			reasons["node(s) were unschedulable"]++
			continue
		case !labels.SelectorFromSet(p.Spec.NodeSelector).Matches(labels.Set(n.Labels)):
			reasons["node(s) didn't match Pod's node affinity/selector"]++
			continue
		}
		h := sha256.Sum256([]byte(string(p.UID) + "\x00" + n.Name))
		tie := binary.BigEndian.Uint64(h[:8])
		if best == "" || load[n.Name] < bestLoad || (load[n.Name] == bestLoad && tie > bestTie) {
			best, bestLoad, bestTie = n.Name, load[n.Name], tie
		}
	}
	if best != "" {
		return best, ""
	}
	var parts []string
	for r, c := range reasons {
		parts = append(parts, fmt.Sprintf("%d %s", c, r))
	}
	sort.Strings(parts)
	msg := fmt.Sprintf("0/%d nodes are available", len(nodes))
	if len(parts) > 0 {
		msg += ": " + strings.Join(parts, ", ")
	}
	return "", msg + "."
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// unschedulable records why a pod waits, once per distinct reason, so a
// pod retried on every change does not flood events.
func (b *Binder) unschedulable(ctx context.Context, p *corev1.Pod, why string) error {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message == why {
			return nil
		}
	}
	cond := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		Message: why, LastTransitionTime: metav1.NewTime(b.cfg.Now())}
	kept := p.Status.Conditions[:0]
	for _, c := range p.Status.Conditions {
		if c.Type != corev1.PodScheduled {
			kept = append(kept, c)
		}
	}
	p.Status.Conditions = append(kept, cond)
	p.Status.Phase = corev1.PodPending
	if err := b.cfg.Client.UpdateStatus(ctx, p); err != nil {
		return fmt.Errorf("mark %s/%s unschedulable: %w", p.Namespace, p.Name, err)
	}
	return b.cfg.Client.Record(ctx, p, "mycel-scheduler", corev1.EventTypeWarning, "FailedScheduling", why)
}

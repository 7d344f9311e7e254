// Package sched places pods on nodes. This slice has only Local, which binds
// every unscheduled pod to the node it runs on: the single-node placement
// that the decentralized tender/bid/award negotiation replaces when nodes
// form a mesh.
package sched

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/mycelfabric/mycel/kubeapi"
)

// Client is the object access Local needs.
type Client interface {
	List(ctx context.Context, list runtime.Object, namespace string, sel labels.Selector) error
	Update(ctx context.Context, obj kubeapi.Object) error
	Record(ctx context.Context, obj kubeapi.Object, component, eventType, reason, message string) error
	Notify(ctx context.Context, resource string, kick chan<- struct{})
}

// Local binds unscheduled pods to one node.
type Local struct {
	client Client
	node   string
	log    *slog.Logger
}

// NewLocal returns a binder for node.
func NewLocal(c Client, node string, log *slog.Logger) (*Local, error) {
	if c == nil || node == "" {
		return nil, errors.New("sched: client and node name are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Local{client: c, node: node, log: log}, nil
}

// Run binds pods as they appear until ctx is done.
func (l *Local) Run(ctx context.Context) {
	kick := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.client.Notify(ctx, "pods", kick)
	}()
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		if err := l.BindAll(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("bind pods", "err", err)
		}
		select {
		case <-ctx.Done():
			<-done
			return
		case <-kick:
		case <-t.C:
		}
	}
}

// BindAll binds every unscheduled, undeleted pod to the node.
func (l *Local) BindAll(ctx context.Context) error {
	var pods corev1.PodList
	if err := l.client.List(ctx, &pods, "", nil); err != nil {
		return err
	}
	var errs []error
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName != "" || p.DeletionTimestamp != nil {
			continue
		}
		p.Spec.NodeName = l.node
		if err := l.client.Update(ctx, p); err != nil {
			errs = append(errs, fmt.Errorf("bind %s/%s: %w", p.Namespace, p.Name, err))
			continue
		}
		l.client.Record(ctx, p, "mycel-scheduler", corev1.EventTypeNormal, "Scheduled",
			fmt.Sprintf("Successfully assigned %s/%s to %s", p.Namespace, p.Name, l.node))
	}
	return errors.Join(errs...)
}

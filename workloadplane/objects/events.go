package objects

import (
	"context"
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxEventKeys bounds the recorder's memory of recent events.
const maxEventKeys = 4096

// eventCache remembers which Event object holds each recent (object, type,
// reason, message), so repeats bump a count instead of piling up objects.
type eventCache struct {
	mu    sync.Mutex
	names map[string]string
	// last is the timestamp of the last new event's name: names are
	// <object>.<nanoseconds, hex> as kube's recorder makes them, kept
	// increasing so two events in one tick do not collide.
	last int64
}

// Record writes a Kubernetes Event about obj from component (e.g.
// "deployment-controller"). Repeats of the same event increase its count.
// Events are best effort: failures are returned but callers may ignore them.
func (o *Objects) Record(ctx context.Context, obj Object, component, eventType, reason, message string) error {
	r, err := o.ResourceOf(obj)
	if err != nil {
		return err
	}
	ns := obj.GetNamespace()
	if ns == "" {
		ns = metav1.NamespaceDefault
	}
	key := strings.Join([]string{string(obj.GetUID()), eventType, reason, message}, "\x00")
	now := metav1.NewTime(o.now())
	o.events.mu.Lock()
	if o.events.names == nil || len(o.events.names) > maxEventKeys {
		o.events.names = map[string]string{}
	}
	name, seen := o.events.names[key]
	if !seen {
		nano := max(o.now().UnixNano(), o.events.last+1)
		o.events.last = nano
		name = fmt.Sprintf("%s.%x", obj.GetName(), nano)
		o.events.names[key] = name
	}
	o.events.mu.Unlock()

	if seen {
		ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if err := o.Get(ctx, ev); err == nil {
			ev.Count++
			ev.LastTimestamp = now
			return o.Update(ctx, ev)
		}
	}
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		InvolvedObject: corev1.ObjectReference{
			Kind: r.Kind, APIVersion: r.GroupVersion.String(), Namespace: obj.GetNamespace(), Name: obj.GetName(),
			UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(),
		},
		Reason: reason, Message: message, Type: eventType, Count: 1,
		FirstTimestamp: now, LastTimestamp: now,
		Source:              corev1.EventSource{Component: component},
		ReportingController: component,
	}
	return o.Create(ctx, ev)
}

package objects

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/mycelfabric/mycel/workloadplane/store"
)

// Event types, as Kubernetes names them.
const (
	Added    = store.Added
	Modified = store.Modified
	Deleted  = store.Deleted
)

// Watch is a stream of decoded changes of one resource.
type Watch struct {
	c Collection
	w *store.Watcher
}

// Event is one decoded change. For Deleted, Object is the last live value.
// For Modified, Prev is the object before the change (with the change's
// resourceVersion), so a filtered watch can tell an object that stopped
// matching its selectors.
type Event struct {
	Type   store.EventType
	Object Object
	Prev   Object
}

// Watch follows changes in namespace ("" for all) after resourceVersion
// from; it fails with 410 Expired if from is older than the retained
// history or names a place in another node's sequence of changes (the
// client lists again on this node: nothing is skipped silently).
func (c Collection) Watch(namespace string, from ResourceVersion) (*Watch, error) {
	if c.o.foreign(from) {
		return nil, apierrors.NewResourceExpired("the resourceVersion was read on another node: list again on this one")
	}
	w, err := c.o.store.Watch(c.r.prefix(namespace), from.Seq)
	if err != nil {
		return nil, storeErr(c.r, "", err)
	}
	return &Watch{c: c, w: w}, nil
}

// Next blocks for the next change, until ctx is done or the watch ends.
func (w *Watch) Next(ctx context.Context) (Event, error) {
	ev, err := w.w.Next(ctx)
	if err != nil {
		return Event{}, err
	}
	rv := w.c.o.recordVersion(ev.Record)
	obj, err := w.c.decode(ev.Record.Value, rv, ev.Record.Key)
	if err != nil {
		return Event{}, err
	}
	out := Event{Type: ev.Type, Object: obj}
	if ev.Prev != nil {
		if out.Prev, err = w.c.decode(ev.Prev, rv, ev.Record.Key); err != nil {
			return Event{}, err
		}
	}
	return out, nil
}

// Close ends the watch.
func (w *Watch) Close() { w.w.Close() }

// Follow keeps a view of the objects in namespace ("" for all) up to date
// until ctx is done: reset gets every object, at the start and whenever the
// watch has to start again (its history expired, an object failed to
// decode), and apply gets each change in between. Why a watch ended or a
// list failed goes to failed, if set; a failed list is retried every second.
func (c Collection) Follow(ctx context.Context, namespace string, reset func([]Object), apply func(Event), failed func(error)) {
	for ctx.Err() == nil {
		l, err := c.List(namespace, nil, nil)
		var w *Watch
		if err == nil {
			w, err = c.Watch(namespace, l.ResourceVersion)
		}
		if err != nil {
			if failed != nil {
				failed(err)
			}
			pause(ctx, time.Second)
			continue
		}
		reset(l.Items)
		for {
			ev, err := w.Next(ctx)
			if err != nil {
				if ctx.Err() == nil && failed != nil {
					failed(err)
				}
				break
			}
			apply(ev)
		}
		w.Close()
	}
}

// pause waits d or until ctx is done.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Notify sends on kick (without blocking) after every change to objects of
// the resource named plural (e.g. "pods"), until ctx is done. Controllers
// use it as their level trigger: a kick means "something changed,
// reconcile".
func (o *Objects) Notify(ctx context.Context, plural string, kick chan<- struct{}) {
	var r *Resource
	for _, c := range o.reg.Load().all {
		if c.Plural == plural && !c.custom {
			r = c
			break
		}
	}
	if r == nil {
		panic(fmt.Sprintf("objects: Notify on unserved resource %q", plural))
	}
	for ctx.Err() == nil {
		_, rv, err := o.store.List(r.prefix(""))
		var w *store.Watcher
		if err == nil {
			w, err = o.store.Watch(r.prefix(""), rv)
		}
		if err != nil {
			pause(ctx, time.Second)
			continue
		}
		for {
			if _, err := w.Next(ctx); err != nil {
				break
			}
			select {
			case kick <- struct{}{}:
			default:
			}
		}
		w.Close()
	}
}

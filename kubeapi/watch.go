package kubeapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// maxWatchTimeout caps a watch's lifetime; clients re-watch from the last
// resourceVersion they saw.
const maxWatchTimeout = 30 * time.Minute

// bookmarkInterval is how often an idle watch that allows bookmarks gets one.
const bookmarkInterval = time.Minute

// serveWatch streams changes as Kubernetes watch events. The headers are
// flushed at once: kubectl wait and rollout status block until they arrive.
func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request, req *request) error {
	ls, fs, err := s.selectors(r, req.res)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	timeout := maxWatchTimeout
	if t, err := queryInt(q, "timeoutSeconds"); err != nil {
		return err
	} else if t != nil && *t > 0 && time.Duration(*t)*time.Second < timeout {
		timeout = time.Duration(*t) * time.Second
	}
	bookmarks := q.Get("allowWatchBookmarks") == "true"
	initialEvents := q.Get("sendInitialEvents") == "true"
	if initialEvents && q.Get("resourceVersionMatch") != "NotOlderThan" {
		return apierrors.NewBadRequest("sendInitialEvents requires resourceVersionMatch=NotOlderThan")
	}
	rvParam := q.Get("resourceVersion")
	fromRV, err := objects.ParseResourceVersion(rvParam)
	if err != nil {
		return err
	}
	// resourceVersion "" or "0" (and sendInitialEvents) start with the
	// current state as ADDED events.
	c := s.objs.In(req.res)
	var initial []objects.Object
	if rvParam == "" || rvParam == "0" || initialEvents {
		res, err := c.List(req.namespace, ls, fs)
		if err != nil {
			return err
		}
		initial = res.Items
		if res.ResourceVersion.Seq > fromRV.Seq || fromRV.Replica != res.ResourceVersion.Replica {
			fromRV = res.ResourceVersion
		}
	}
	watch, err := c.Watch(req.namespace, fromRV)
	var expired error
	if err != nil {
		if !apierrors.IsResourceExpired(err) && !apierrors.IsGone(err) {
			return err
		}
		expired = err
	}
	if watch != nil {
		defer watch.Close()
	}

	table := wantsTable(r.Header.Get("Accept"))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	flush := func() {
		if flusher != nil {
			flusher.Flush()
		}
	}
	flush()

	enc := json.NewEncoder(w)
	send := func(typ string, obj runtime.Object) error {
		if table {
			if o, ok := obj.(objects.Object); ok {
				obj = s.table(req.res, []objects.Object{o}, o.GetResourceVersion(), r)
			}
		}
		raw, err := json.Marshal(obj)
		if err != nil {
			return err
		}
		if err := enc.Encode(metav1.WatchEvent{Type: typ, Object: runtime.RawExtension{Raw: raw}}); err != nil {
			return err
		}
		flush()
		return nil
	}
	if expired != nil {
		var st apierrors.APIStatus
		errors.As(expired, &st)
		status := st.Status()
		status.Kind, status.APIVersion = "Status", "v1"
		send("ERROR", &status) // the stream ends either way
		return nil
	}
	for _, obj := range initial {
		if err := send("ADDED", obj); err != nil {
			return nil // the client is gone; past the headers nothing more can be said
		}
	}
	bookmark := func(rv objects.ResourceVersion, initialEnd bool) error {
		b := req.res.New()
		b.GetObjectKind().SetGroupVersionKind(req.res.GVK())
		b.SetResourceVersion(c.ListVersion(rv.Seq).String())
		if initialEnd {
			b.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
		}
		return send("BOOKMARK", b)
	}
	lastRV := fromRV
	if initialEvents {
		if err := bookmark(lastRV, true); err != nil {
			return nil // the client is gone; past the headers nothing more can be said
		}
	}

	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	for {
		next, nextCancel := context.WithTimeout(ctx, bookmarkInterval)
		ev, err := watch.Next(next)
		nextCancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			if bookmarks {
				if err := bookmark(lastRV, false); err != nil {
					return nil // the client is gone; past the headers nothing more can be said
				}
			}
			continue
		}
		if err != nil {
			// Timeout, client gone, watcher cut or store closed: end the
			// stream; clients re-watch from their last resourceVersion.
			return nil
		}
		lastRV = objects.MustParseResourceVersion(ev.Object.GetResourceVersion())
		typ, obj := filtered(req.res, ev, ls, fs)
		if obj == nil {
			continue
		}
		if err := send(typ, obj); err != nil {
			return nil // the client is gone; past the headers nothing more can be said
		}
	}
}

// filtered is what a watch with selectors sends for ev, as kube-apiserver's
// watch cache does: an object that starts matching is ADDED, one that stops
// matching is DELETED (as it was, at the change's resourceVersion), one that
// matches neither before nor after is not sent (nil).
func filtered(r *objects.Resource, ev objects.Event, ls labels.Selector, fs fields.Selector) (string, runtime.Object) {
	now := r.Matches(ev.Object, ls, fs)
	if ev.Type != objects.Modified {
		if !now {
			return "", nil
		}
		return string(ev.Type), ev.Object
	}
	before := ev.Prev != nil && r.Matches(ev.Prev, ls, fs)
	switch {
	case now && before:
		return string(watch.Modified), ev.Object
	case now:
		return string(watch.Added), ev.Object
	case before:
		return string(watch.Deleted), ev.Prev
	}
	return "", nil
}

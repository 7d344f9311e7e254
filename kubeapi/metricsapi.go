package kubeapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/duration"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
)

// Metrics answers the resource metrics API, metrics.k8s.io/v1beta1, which
// `kubectl top` reads: what the fabric's nodes and running pods use now.
type Metrics interface {
	NodeMetrics(ctx context.Context) ([]metricsv1beta1.NodeMetrics, error)
	// PodMetrics is the usage of the running pods of namespace ("" for
	// every namespace).
	PodMetrics(ctx context.Context, namespace string) ([]metricsv1beta1.PodMetrics, error)
}

var metricsGV = schema.GroupVersion{Group: "metrics.k8s.io", Version: "v1beta1"}

// metricsGroup is served as metrics-server serves it: read only, not
// watchable.
var metricsGroup = staticGroup{metricsGV, []staticResource{
	{metav1.APIResource{Name: "nodes", Namespaced: false, Kind: "NodeMetrics", Verbs: []string{"get", "list"}}, &metricsv1beta1.NodeMetrics{}, &metricsv1beta1.NodeMetricsList{}},
	{metav1.APIResource{Name: "pods", Namespaced: true, Kind: "PodMetrics", Verbs: []string{"get", "list"}}, &metricsv1beta1.PodMetrics{}, &metricsv1beta1.PodMetricsList{}},
}}

// serveMetrics answers a metrics.k8s.io resource request:
// /apis/metrics.k8s.io/v1beta1/nodes[/NAME] and
// /apis/metrics.k8s.io/v1beta1[/namespaces/NS]/pods[/NAME].
func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request, path string, user UserInfo) error {
	segs := strings.Split(strings.TrimPrefix(path, "/"+gvPath(metricsGV)+"/"), "/")
	var namespace, name string
	if segs[0] == "namespaces" && len(segs) >= 3 {
		namespace, segs = segs[1], segs[2:]
	}
	if len(segs) > 2 || (segs[0] != "nodes" && segs[0] != "pods") || (segs[0] == "nodes" && namespace != "") {
		return notFoundPath(path)
	}
	resource := segs[0]
	if len(segs) == 2 {
		name = segs[1]
	}
	gr := metricsGV.WithResource(resource).GroupResource()
	verb := "list"
	if name != "" {
		verb = "get"
	}
	q := r.URL.Query()
	if r.Method != http.MethodGet || q.Get("watch") == "true" || q.Get("watch") == "1" {
		return apierrors.NewMethodNotSupported(gr, strings.ToLower(r.Method))
	}
	if resource == "pods" && namespace == "" && name != "" {
		return notFoundPath(path)
	}
	if err := s.authorize(r.Context(), AuthzRequest{User: user, Verb: verb, APIGroup: metricsGV.Group, Resource: resource, Namespace: namespace, Name: name}); err != nil {
		return apierrors.NewForbidden(gr, name, err)
	}
	ls, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("invalid labelSelector: %v", err))
	}
	fs, err := fields.ParseSelector(q.Get("fieldSelector"))
	if err != nil {
		return apierrors.NewBadRequest(fmt.Sprintf("invalid fieldSelector: %v", err))
	}
	matches := func(m metav1.ObjectMeta) bool {
		return (name == "" || m.Name == name) && ls.Matches(labels.Set(m.Labels)) &&
			fs.Matches(fields.Set{"metadata.name": m.Name, "metadata.namespace": m.Namespace})
	}
	var rows []metav1.TableRow
	switch resource {
	case "nodes":
		nms, err := s.cfg.Metrics.NodeMetrics(r.Context())
		if err != nil {
			return err
		}
		list := &metricsv1beta1.NodeMetricsList{Items: []metricsv1beta1.NodeMetrics{}}
		for _, m := range nms {
			if matches(m.ObjectMeta) {
				m.TypeMeta = metav1.TypeMeta{Kind: "NodeMetrics", APIVersion: metricsGV.String()}
				list.Items = append(list.Items, m)
				rows = append(rows, metricsRow(&m.ObjectMeta, m.Usage.Cpu().MilliValue(), m.Usage.Memory().Value(), m.Window.Duration))
			}
		}
		list.TypeMeta = metav1.TypeMeta{Kind: "NodeMetricsList", APIVersion: metricsGV.String()}
		var one any
		if len(list.Items) > 0 {
			one = &list.Items[0]
		}
		return s.writeMetrics(w, r, gr, name, one, rows, list)
	default:
		pms, err := s.cfg.Metrics.PodMetrics(r.Context(), namespace)
		if err != nil {
			return err
		}
		list := &metricsv1beta1.PodMetricsList{Items: []metricsv1beta1.PodMetrics{}}
		for _, m := range pms {
			if matches(m.ObjectMeta) {
				m.TypeMeta = metav1.TypeMeta{Kind: "PodMetrics", APIVersion: metricsGV.String()}
				list.Items = append(list.Items, m)
				var cpu, mem int64
				for _, c := range m.Containers {
					cpu += c.Usage.Cpu().MilliValue()
					mem += c.Usage.Memory().Value()
				}
				rows = append(rows, metricsRow(&m.ObjectMeta, cpu, mem, m.Window.Duration))
			}
		}
		list.TypeMeta = metav1.TypeMeta{Kind: "PodMetricsList", APIVersion: metricsGV.String()}
		var one any
		if len(list.Items) > 0 {
			one = &list.Items[0]
		}
		return s.writeMetrics(w, r, gr, name, one, rows, list)
	}
}

// writeMetrics answers with the item asked for by name (first, the only
// one then), a Table, or the list.
func (s *Server) writeMetrics(w http.ResponseWriter, r *http.Request, gr schema.GroupResource, name string, first any, rows []metav1.TableRow, list any) error {
	switch {
	case name != "" && first == nil:
		return apierrors.NewNotFound(gr, name)
	case wantsTable(r.Header.Get("Accept")):
		s.writeJSON(w, http.StatusOK, &metav1.Table{
			TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"},
			ColumnDefinitions: []metav1.TableColumnDefinition{
				{Name: "Name", Type: "string", Format: "name", Description: "Name of the resource"},
				{Name: "CPU", Type: "string", Description: "CPU in use over the window"},
				{Name: "Memory", Type: "string", Description: "Memory in use"},
				{Name: "Window", Type: "string", Description: "Interval the CPU usage was measured over"},
			},
			Rows: rows,
		})
	case name != "":
		s.writeJSON(w, http.StatusOK, first)
	default:
		s.writeJSON(w, http.StatusOK, list)
	}
	return nil
}

func metricsRow(m *metav1.ObjectMeta, milliCPU, memory int64, window time.Duration) metav1.TableRow {
	pm := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/v1"}, ObjectMeta: *m}
	return metav1.TableRow{
		Cells:  []any{m.Name, fmt.Sprintf("%dm", milliCPU), fmt.Sprintf("%dMi", memory/(1<<20)), duration.HumanDuration(window)},
		Object: runtime.RawExtension{Object: pm},
	}
}

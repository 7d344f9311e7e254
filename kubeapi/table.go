package kubeapi

import (
	"mime"
	"net/http"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

// wantsTable reports whether the Accept header asks for a meta.k8s.io Table.
func wantsTable(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		_, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if params["as"] == "Table" && params["g"] == "meta.k8s.io" && (params["v"] == "v1" || params["v"] == "v1beta1") {
			return true
		}
	}
	return false
}

// table renders objects as a meta.k8s.io/v1 Table with the resource's
// columns, as kube-apiserver does for `kubectl get`.
func (s *Server) table(res *objects.Resource, objs []objects.Object, rv string, r *http.Request) *metav1.Table {
	include := metav1.IncludeMetadata
	if v := r.URL.Query().Get("includeObject"); v != "" {
		include = metav1.IncludeObjectPolicy(v)
	}
	t := &metav1.Table{
		TypeMeta:          metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"},
		ListMeta:          metav1.ListMeta{ResourceVersion: rv},
		ColumnDefinitions: res.Columns(),
		Rows:              []metav1.TableRow{},
	}
	now := s.cfg.Now()
	for _, obj := range objs {
		row := metav1.TableRow{Cells: res.Cells(obj, now)}
		switch include {
		case metav1.IncludeObject:
			row.Object.Object = obj
		case metav1.IncludeMetadata:
			m := &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/v1"}}
			om, _ := obj.(interface{ GetObjectMeta() metav1.Object })
			if om != nil {
				if full, ok := om.GetObjectMeta().(*metav1.ObjectMeta); ok {
					m.ObjectMeta = *full
				}
			}
			row.Object.Object = m
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

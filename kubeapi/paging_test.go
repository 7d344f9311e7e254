package kubeapi

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/pager"
)

// TestListsPaginate: limit and continue page through a list as client-go's
// pager expects, each object once; a bad limit or continue is 400.
func TestListsPaginate(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for i := range 7 {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}}
		if _, err := f.client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := f.client.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{Limit: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Items) != 3 || first.Continue == "" || first.RemainingItemCount == nil || *first.RemainingItemCount != 4 {
		t.Fatalf("first page: %d items, continue %q, remaining %v", len(first.Items), first.Continue, first.RemainingItemCount)
	}
	seen := map[string]int{}
	p := pager.New(func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return f.client.CoreV1().ConfigMaps("default").List(ctx, opts)
	})
	p.PageSize = 2
	err = p.EachListItem(ctx, metav1.ListOptions{}, func(obj runtime.Object) error {
		seen[obj.(*corev1.ConfigMap).Name]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		if seen[fmt.Sprintf("cm-%d", i)] != 1 {
			t.Fatalf("the pager saw %v, want each of the 7 once", seen)
		}
	}
	for _, q := range []string{"limit=abc", "limit=2&continue=garbage"} {
		if code, body, _ := f.do(t, f.http, http.MethodGet, "/api/v1/namespaces/default/configmaps?"+q, "", ""); code != http.StatusBadRequest {
			t.Fatalf("GET ?%s: %d %s, want 400", q, code, body)
		}
	}
}

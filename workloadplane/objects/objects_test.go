package objects

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"
)

// TestEveryResourceIsWhole: each resource's type is registered under its
// kind, its list type under KindList, and its Table has one cell per
// column, for a defaulted empty object; a kind added without one of these
// fails here rather than in kubectl.
func TestEveryResourceIsWhole(t *testing.T) {
	o := New(nil, Config{})
	seen := map[schema.GroupVersionResource]bool{}
	for _, r := range o.Resources() {
		t.Run(r.Plural, func(t *testing.T) {
			gvr := r.GroupVersion.WithResource(r.Plural)
			if seen[gvr] {
				t.Fatalf("%s listed twice", gvr)
			}
			seen[gvr] = true
			if got, err := o.ResourceOf(r.New()); err != nil || got != r {
				t.Fatalf("ResourceOf(New()) = %v, %v", got, err)
			}
			if got, err := o.ResourceOf(r.NewList()); err != nil || got != r {
				t.Fatalf("ResourceOf(NewList()) = %v, %v", got, err)
			}
			if o.Lookup(r.GroupVersion, r.Plural) != r {
				t.Fatal("Lookup does not find it")
			}
			obj := r.New()
			r.prepareCreate(obj)
			if cells, cols := r.Cells(obj, time.Now()), r.Columns(); len(cells) != len(cols) {
				t.Fatalf("%d cells for %d columns", len(cells), len(cols))
			}
			if r.HasSub("scale") != (r.scale != nil) {
				t.Fatal("a scale subresource needs scale accessors, and scale accessors a scale subresource")
			}
		})
	}
}

package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// TestInformersSyncEveryKind: on each of three nodes, client-go v0.37
// informers (dynamic, as controllers built on controller-runtime use them)
// list and watch every resource discovery says can be watched — the
// built-in kinds and a CRD's — sync, and then see an object created
// through another node.
func TestInformersSyncEveryKind(t *testing.T) {
	a := startNode(t)
	b := joinNode(t, a)
	c := joinNode(t, a)
	if out, err := a.kubectlIn(widgetCRD, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply CRD: %v\n%s", err, out)
	}
	a.kubectl("wait", "--for=condition=Established", "crd/widgets.example.com", "--timeout=60s")
	widgets := schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	seen := map[string]chan string{} // by node: names of added widgets
	for _, n := range []*node{a, b, c} {
		cfg, err := clientcmd.BuildConfigFromFlags("", n.kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		lists, err := discovery.NewDiscoveryClientForConfigOrDie(cfg).ServerPreferredResources()
		if err != nil {
			t.Fatalf("discovery on %s: %v", n.name, err)
		}
		factory := dynamicinformer.NewDynamicSharedInformerFactory(dynamic.NewForConfigOrDie(cfg), 0)
		var gvrs []schema.GroupVersionResource
		for _, list := range lists {
			gv, _ := schema.ParseGroupVersion(list.GroupVersion)
			for _, r := range list.APIResources {
				if !strings.Contains(r.Name, "/") && slices.Contains(r.Verbs, "list") && slices.Contains(r.Verbs, "watch") {
					gvrs = append(gvrs, gv.WithResource(r.Name))
					factory.ForResource(gv.WithResource(r.Name))
				}
			}
		}
		if !slices.Contains(gvrs, widgets) || len(gvrs) < 15 {
			t.Fatalf("%s: watchable resources %v, want the built-in kinds and widgets", n.name, gvrs)
		}
		added := make(chan string, 16)
		seen[n.name] = added
		factory.ForResource(widgets).Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
			if m, err := meta.Accessor(obj); err == nil {
				added <- m.GetName()
			}
		}})
		factory.Start(ctx.Done())
		for gvr, ok := range factory.WaitForCacheSync(ctx.Done()) {
			if !ok {
				t.Fatalf("%s: the informer of %s did not sync", n.name, gvr)
			}
		}
		t.Logf("%s: %d informers synced", n.name, len(gvrs))
	}
	if out, err := b.kubectlIn(widget("informed", "large"), "apply", "-f", "-"); err != nil {
		t.Fatalf("create widget: %v\n%s", err, out)
	}
	for name, added := range seen {
		for got := ""; got != "informed"; {
			select {
			case got = <-added:
			case <-ctx.Done():
				t.Fatalf("the widgets informer of %s never saw the widget created through %s", name, b.name)
			}
		}
	}
}

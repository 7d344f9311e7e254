package e2e

import (
	"context"
	"encoding/json"

	"fmt"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

// TestIdleFabricIsQuiet: once a Deployment's pods run and are Ready on a
// fabric of two nodes, informers of the kinds every controller watches see
// no change for a minute: a write that changes nothing is not a write, and
// nothing rewrites what has not changed.
func TestIdleFabricIsQuiet(t *testing.T) {
	a := startNode(t)
	b := joinNode(t, a)
	manifest := fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: idle}
spec:
  replicas: 2
  selector: {matchLabels: {app: idle}}
  template:
    metadata: {labels: {app: idle}}
    spec:
      containers:
      - name: web
        image: %s
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
        livenessProbe: {tcpSocket: {port: 8080}, periodSeconds: 1}
`, demoImage)
	if out, err := a.kubectlIn(manifest, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	a.kubectl("rollout", "status", "deploy/idle", "--timeout=120s")
	a.kubectl("wait", "--for=condition=Ready", "pod", "-l", "app=idle", "--timeout=60s")

	cfg, err := clientcmd.BuildConfigFromFlags("", b.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	factory := dynamicinformer.NewDynamicSharedInformerFactory(dynamic.NewForConfigOrDie(cfg), 0)
	var mu sync.Mutex
	var changes []string
	changed := make(chan struct{}, 1)
	quiet := false
	for _, gvr := range []schema.GroupVersionResource{
		{Version: "v1", Resource: "pods"}, {Version: "v1", Resource: "nodes"}, {Version: "v1", Resource: "namespaces"},
		{Group: "apps", Version: "v1", Resource: "deployments"}, {Group: "apps", Version: "v1", Resource: "replicasets"},
	} {
		record := func(what string, obj any) {
			mu.Lock()
			defer mu.Unlock()
			if m, err := meta.Accessor(obj); err == nil && quiet {
				changes = append(changes, fmt.Sprintf("%s %s %s/%s rv=%s", what, gvr.Resource, m.GetNamespace(), m.GetName(), m.GetResourceVersion()))
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		}
		factory.ForResource(gvr).Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: func(o any) { record("ADDED", o) },
			UpdateFunc: func(old, o any) {
				a, _ := json.Marshal(old)
				b, _ := json.Marshal(o)
				p, _ := jsonpatch.CreateMergePatch(a, b)
				record("MODIFIED "+string(p), o)
			},
			DeleteFunc: func(o any) { record("DELETED", o) },
		})
	}
	factory.Start(ctx.Done())
	for gvr, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("the informer of %s did not sync", gvr)
		}
	}
	mu.Lock()
	quiet = true
	mu.Unlock()
	// Watch for a minute, or until the first change.
	window := time.NewTimer(time.Minute)
	defer window.Stop()
	select {
	case <-window.C:
	case <-changed:
	}
	mu.Lock()
	defer mu.Unlock()
	if len(changes) > 0 {
		t.Fatalf("%d change(s) on an idle fabric within a minute, first: %v", len(changes), changes[:min(len(changes), 20)])
	}
}

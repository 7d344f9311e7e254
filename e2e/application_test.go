package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// application is a realistic multi-document manifest: every kind a small
// application brings, in one file.
const application = `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: shop-config, namespace: shop}
data:
  greeting: hello from the config
  mode: production
---
apiVersion: v1
kind: Secret
metadata: {name: shop-secret, namespace: shop}
type: Opaque
stringData:
  password: s3cr3t-in-env
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: shop, namespace: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      serviceAccountName: shop
      containers:
      - name: web
        image: %[1]s
        env:
        - name: PASSWORD
          valueFrom: {secretKeyRef: {name: shop-secret, key: password}}
        envFrom:
        - configMapRef: {name: shop-config}
        volumeMounts:
        - {name: config, mountPath: /etc/shop}
        readinessProbe: {httpGet: {path: /, port: 8080}, periodSeconds: 1}
      volumes:
      - name: config
        configMap: {name: shop-config}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web, namespace: shop}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: shop}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: migrate, image: %[1]s, args: ["true"]}
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: report, namespace: shop}
spec:
  schedule: "*/5 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - {name: report, image: %[1]s, args: ["true"]}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: node-agent, namespace: shop}
spec:
  selector: {matchLabels: {app: node-agent}}
  template:
    metadata: {labels: {app: node-agent}}
    spec:
      containers:
      - {name: agent, image: %[1]s, args: ["sleep", "100000"]}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: carts.shop.example.com}
spec:
  group: shop.example.com
  scope: Namespaced
  names: {plural: carts, singular: cart, kind: Cart}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              items: {type: integer, minimum: 0}
---
apiVersion: shop.example.com/v1
kind: Cart
metadata: {name: alice, namespace: shop}
spec: {items: 3}
---
apiVersion: shop.example.com/v1
kind: Cart
metadata: {name: bob, namespace: shop}
spec: {items: 0}
`

// TestApplicationManifest: one `kubectl apply -f` of a whole application on
// three nodes. As on Kubernetes, the custom resources of a CRD created by
// the same apply are refused by kubectl (it maps every document before
// applying any) and go in when the same command is run again; then
// everything is Running or Complete, and the containers see their
// configuration through kubectl exec on any node.
func TestApplicationManifest(t *testing.T) {
	a := startNode(t)
	b := joinNode(t, a)
	c := joinNode(t, a)
	manifest := fmt.Sprintf(application, demoImage)
	out, err := a.kubectlIn(manifest, "apply", "-f", "-")
	if err == nil || !strings.Contains(out, "ensure CRDs are installed first") || !strings.Contains(out, "deployment.apps/web created") {
		t.Fatalf("first apply: %v\n%s\nwant everything created but the carts, which wait for their CRD", err, out)
	}
	eventually(t, 30*time.Second, func() error {
		out, err := b.kubectlIn(manifest, "apply", "-f", "-")
		if err != nil || !strings.Contains(out, "cart.shop.example.com/alice created") {
			return fmt.Errorf("second apply: %v\n%s", err, out)
		}
		return nil
	})

	b.kubectl("rollout", "status", "-n", "shop", "deploy/web", "--timeout=180s")
	b.kubectl("rollout", "status", "-n", "shop", "ds/node-agent", "--timeout=180s")
	c.kubectl("wait", "-n", "shop", "--for=condition=Complete", "job/migrate", "--timeout=120s")
	if got := c.kubectl("get", "-n", "shop", "ds", "node-agent", "-o", "jsonpath={.status.numberReady}"); got != "3" {
		t.Fatalf("node-agent ready on %s nodes, want 3", got)
	}
	if got := strings.TrimSpace(c.kubectl("get", "-n", "shop", "carts", "-o", "name")); got != "cart.shop.example.com/alice\ncart.shop.example.com/bob" {
		t.Fatalf("carts = %q", got)
	}
	if got := c.kubectl("get", "-n", "shop", "cronjob", "report", "-o", "jsonpath={.spec.schedule}"); got != "*/5 * * * *" {
		t.Fatalf("cronjob schedule %q", got)
	}
	eventually(t, 30*time.Second, func() error {
		if got := c.kubectl("get", "-n", "shop", "pdb", "web", "-o", "jsonpath={.status.disruptionsAllowed}"); got != "1" {
			return fmt.Errorf("pdb web allows %q disruptions, want 1", got)
		}
		return nil
	})
	pods := strings.Fields(a.kubectl("get", "pods", "-n", "shop", "-l", "app=web", "-o", "jsonpath={.items[*].metadata.name}"))
	if len(pods) != 2 {
		t.Fatalf("web pods %v, want 2", pods)
	}
	for i, n := range []*node{a, c} {
		pod := pods[i]
		if got := n.kubectl("get", "pod", "-n", "shop", pod, "-o", "jsonpath={.spec.serviceAccountName}"); got != "shop" {
			t.Errorf("%s service account %q", pod, got)
		}
		env := n.kubectl("exec", "-n", "shop", pod, "--", "/mycel-demo", "env")
		for _, want := range []string{"PASSWORD=s3cr3t-in-env", "greeting=hello from the config", "mode=production"} {
			if !strings.Contains(env, want) {
				t.Errorf("env of %s lacks %q:\n%s", pod, want, env)
			}
		}
		if got := n.kubectl("exec", "-n", "shop", pod, "--", "/mycel-demo", "cat", "/etc/shop/greeting"); got != "hello from the config" {
			t.Errorf("%s:/etc/shop/greeting = %q", pod, got)
		}
	}
}

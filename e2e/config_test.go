package e2e

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConfigMapsSecretsAndServiceAccounts: kubectl's create commands work
// against one node, the objects are read back through a node that joined
// with a token (which opens Secrets with the data keys its join brought);
// pods on that node see them in their environment and as files in real
// Podman containers, and a ConfigMap update reaches a running container;
// Kubernetes' limits and immutability hold, every namespace has a default
// ServiceAccount, and no node's store file holds a Secret's value.
func TestConfigMapsSecretsAndServiceAccounts(t *testing.T) {
	a := startNode(t)
	b := joinNode(t, a)
	const password = "correct-horse-battery-staple"
	dir := t.TempDir()
	file := filepath.Join(dir, "app.properties")
	env := filepath.Join(dir, "app.env")
	os.WriteFile(file, []byte("color=blue\n"), 0o644)
	os.WriteFile(env, []byte("MODE=prod\nLEVEL=3\n"), 0o644)

	a.kubectl("create", "configmap", "app", "--from-literal=greeting=hello", "--from-file="+file)
	a.kubectl("create", "configmap", "envs", "--from-env-file="+env)
	a.kubectl("create", "secret", "generic", "db", "--from-literal=password="+password)
	a.kubectl("create", "secret", "docker-registry", "reg", "--docker-server=registry.example", "--docker-username=u", "--docker-password=p")

	eventually(t, 30*time.Second, func() error {
		out, err := b.kubectlErr("get", "secret", "db", "-o", "jsonpath={.data.password}")
		if err != nil {
			return err
		}
		if got, _ := base64.StdEncoding.DecodeString(out); string(got) != password {
			return fmt.Errorf("secret db on %s: %q", b.name, out)
		}
		return nil
	})
	if out := b.kubectl("get", "configmap", "app", "-o", "jsonpath={.data.app\\.properties}"); out != "color=blue\n" {
		t.Fatalf("configmap app on %s: %q", b.name, out)
	}
	if out := b.kubectl("get", "configmap", "envs", "-o", "jsonpath={.data.MODE}/{.data.LEVEL}"); out != "prod/3" {
		t.Fatalf("configmap envs: %q", out)
	}
	// kubectl pages through lists (its default chunk size is 500).
	// (Names and data counts: an AGE column can tick between the two runs.)
	cols := "custom-columns=NAME:.metadata.name,DATA:.data"
	if all, paged := b.kubectl("get", "configmaps", "--no-headers", "-o", cols), b.kubectl("get", "configmaps", "--no-headers", "-o", cols, "--chunk-size=1"); all != paged || strings.Count(all, "\n") < 2 {
		t.Fatalf("kubectl get configmaps in chunks of 1:\n%s\nwhole:\n%s", paged, all)
	}
	if out := b.kubectl("get", "secrets"); !strings.Contains(out, "kubernetes.io/dockerconfigjson") || !strings.Contains(out, "Opaque") {
		t.Fatalf("kubectl get secrets:\n%s", out)
	}

	// Pods on the joined node take env from the Secret and ConfigMap and
	// mount them as files; an update of the ConfigMap reaches the running
	// container's files.
	pods := fmt.Sprintf(`
apiVersion: v1
kind: Pod
metadata: {name: show, labels: {app: show}}
spec:
  nodeName: %[1]s
  restartPolicy: Never
  containers:
  - name: files
    image: %[2]s
    args: [cat, /cfg/app.properties, /secret/password, /etc/greeting, /info/labels]
    volumeMounts:
    - {name: cfg, mountPath: /cfg}
    - {name: cfg, mountPath: /etc/greeting, subPath: greeting}
    - {name: secret, mountPath: /secret}
    - {name: info, mountPath: /info}
  - name: env
    image: %[2]s
    args: [env]
    envFrom: [{configMapRef: {name: envs}, prefix: CFG_}]
    env:
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: db, key: password}}}
    - {name: GREETING, valueFrom: {configMapKeyRef: {name: app, key: greeting}}}
    - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
  volumes:
  - {name: cfg, configMap: {name: app}}
  - {name: secret, secret: {secretName: db, defaultMode: 0400}}
  - {name: info, downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}}
---
apiVersion: v1
kind: Pod
metadata: {name: watcher}
spec:
  nodeName: %[1]s
  containers:
  - name: watch
    image: %[2]s
    args: [watch, /cfg/greeting]
    volumeMounts: [{name: cfg, mountPath: /cfg}]
  volumes: [{name: cfg, configMap: {name: app}}]
`, b.name, demoImage)
	if out, err := a.kubectlIn(pods, "apply", "-f", "-"); err != nil {
		t.Fatalf("apply pods: %v\n%s", err, out)
	}
	eventually(t, 60*time.Second, func() error {
		out, err := a.kubectlErr("get", "pod", "show", "-o", "jsonpath={.status.phase}")
		if err != nil || out != "Succeeded" {
			return fmt.Errorf("pod show is %q (%v)", out, err)
		}
		return nil
	})
	if out := a.kubectl("logs", "show", "-c", "files"); out != "color=blue\n"+password+"hello"+`app="show"` {
		t.Fatalf("files seen in the container:\n%q", out)
	}
	envOut := a.kubectl("logs", "show", "-c", "env")
	for _, want := range []string{"PASSWORD=" + password, "GREETING=hello", "CFG_MODE=prod", "CFG_LEVEL=3", "POD=show"} {
		if !strings.Contains(envOut, want+"\n") {
			t.Fatalf("container env lacks %s:\n%s", want, envOut)
		}
	}
	eventually(t, 60*time.Second, func() error {
		if out, _ := a.kubectlErr("logs", "watcher"); !strings.Contains(out, "/cfg/greeting: hello") {
			return fmt.Errorf("watcher logs: %q", out)
		}
		return nil
	})
	a.kubectl("patch", "configmap", "app", "-p", `{"data":{"greeting":"bonjour"}}`)
	eventually(t, 30*time.Second, func() error {
		if out, _ := a.kubectlErr("logs", "watcher"); !strings.Contains(out, "/cfg/greeting: bonjour") {
			return fmt.Errorf("the update has not reached the container's file: %q", out)
		}
		return nil
	})

	// A pod referring to a key that does not exist waits and says which.
	missing := fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"missing"},"spec":{"nodeName":%q,
"containers":[{"name":"c","image":%q,"env":[{"name":"X","valueFrom":{"secretKeyRef":{"name":"db","key":"nope"}}}]}]}}`, b.name, demoImage)
	if out, err := a.kubectlIn(missing, "apply", "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	eventually(t, 30*time.Second, func() error {
		out := a.kubectl("get", "pod", "missing", "-o", "jsonpath={.status.containerStatuses[0].state.waiting.reason}: {.status.containerStatuses[0].state.waiting.message}")
		if out != "CreateContainerConfigError: couldn't find key nope in Secret default/db" {
			return fmt.Errorf("pod missing waits with %q", out)
		}
		return nil
	})

	// Every namespace gets its default ServiceAccount, seen from every node.
	a.kubectl("create", "namespace", "team")
	for _, n := range []*node{a, b} {
		eventually(t, 30*time.Second, func() error {
			_, err := n.kubectlErr("get", "serviceaccount", "default", "-n", "team")
			return err
		})
	}

	// Over 1 MiB: 422 naming the limit, and nothing stored.
	big := filepath.Join(dir, "big")
	os.WriteFile(big, bytes.Repeat([]byte("x"), 1<<20+1), 0o644)
	if out, err := a.kubectlErr("create", "configmap", "big", "--from-file="+big); err == nil || !strings.Contains(out, "Too long") {
		t.Fatalf("1 MiB + 1 ConfigMap: %v\n%s", err, out)
	}
	// Immutable data stays as it is.
	a.kubectl("create", "secret", "generic", "frozen", "--from-literal=k=v")
	a.kubectl("patch", "secret", "frozen", "-p", `{"immutable":true}`)
	if out, err := a.kubectlErr("patch", "secret", "frozen", "-p", `{"stringData":{"k":"w"}}`); err == nil || !strings.Contains(out, "immutable") {
		t.Fatalf("update of an immutable Secret: %v\n%s", err, out)
	}

	// Neither the value nor its base64 is in any node's store file.
	for _, n := range []*node{a, b} {
		raw, err := os.ReadFile(filepath.Join(n.dataDir, "state.db"))
		if err != nil {
			t.Fatal(err)
		}
		for _, needle := range []string{password, base64.StdEncoding.EncodeToString([]byte(password))} {
			if bytes.Contains(raw, []byte(needle)) {
				t.Fatalf("%s's store file contains %q", n.name, needle)
			}
		}
		if !bytes.Contains(raw, []byte("color=blue")) {
			t.Fatalf("%s's store file lacks the ConfigMap: is this the store file?", n.name)
		}
	}
}

package policy

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/mycelfabric/mycel/policies"
)

func pod(privileged bool) map[string]any {
	return map[string]any{
		"operation": "CREATE",
		"kind":      map[string]any{"kind": "Pod", "version": "v1"},
		"object": map[string]any{"spec": map[string]any{"containers": []any{
			map[string]any{"name": "c", "image": "i", "securityContext": map[string]any{"privileged": privileged}},
		}}},
	}
}

func TestDefaultAdmission(t *testing.T) {
	e, err := Load(context.Background(), policies.Default, "policies")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Admit(context.Background(), pod(false)); err != nil {
		t.Fatalf("plain pod denied: %v", err)
	}
	err = e.Admit(context.Background(), pod(true))
	var denied *DeniedError
	if !errors.As(err, &denied) || !strings.Contains(err.Error(), "no-privileged-containers") {
		t.Fatalf("privileged pod: got %v, want a denial naming the rule", err)
	}
}

func TestBrokenPolicyNamesFileAndLine(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "admission.rego"), []byte("package mycel.admission\n\ndeny contains msg if {\n  msg := \n}\n"), 0o644)
	_, err := LoadDir(context.Background(), dir)
	if err == nil || !strings.Contains(err.Error(), "admission.rego:") {
		t.Fatalf("got %v, want an error naming admission.rego:<line>", err)
	}
}

func TestPolicyDirReplacesDefaults(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "admission.rego"), []byte("package mycel.admission\n\ndeny contains \"everything-denied\" if true\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "admission_test.rego"), []byte("this is not rego"), 0o644)
	e, err := LoadDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Admit(context.Background(), pod(false)); err == nil || !strings.Contains(err.Error(), "everything-denied") {
		t.Fatalf("custom policy not applied: %v", err)
	}
	if _, err := LoadDir(context.Background(), t.TempDir()); !errors.Is(err, ErrNoPolicies) {
		t.Fatalf("empty dir: %v", err)
	}
}

// value is v as OPA's own value, as the placement path builds its input.
func value(t *testing.T, v any) ast.Value {
	t.Helper()
	out, err := ast.InterfaceToValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestDefaultPlacement(t *testing.T) {
	e, err := Load(context.Background(), policies.Default, "policies")
	if err != nil {
		t.Fatal(err)
	}
	res := map[string]any{"milliCPU": 2000, "memoryBytes": 4 << 30, "pods": 110}
	in := func(labels map[string]any, siblings int) ast.Value {
		return value(t, map[string]any{
			"pod": map[string]any{"metadata": map[string]any{"name": "p"}},
			"node": map[string]any{"name": "n", "labels": labels, "allocatable": res, "free": res, "requests": map[string]any{"milliCPU": 0, "memoryBytes": 0, "pods": 1},
				"percentFreeAfter": map[string]any{"cpu": 100, "memory": 100}},
			"siblings": map[string]any{"node": siblings, "zone": 0},
		})
	}
	alone, err := e.Place(context.Background(), in(map[string]any{}, 0))
	if err != nil || len(alone.Deny) != 0 || alone.Score != 200 {
		t.Fatalf("idle node: %+v, %v; want score 200 and no denial", alone, err)
	}
	crowded, err := e.Place(context.Background(), in(map[string]any{}, 2))
	if err != nil || crowded.Score >= alone.Score {
		t.Fatalf("node with 2 siblings scored %v (idle %v), %v; want lower", crowded.Score, alone.Score, err)
	}
	denied, err := e.Place(context.Background(), in(map[string]any{"mycel.io/unschedulable": "true"}, 0))
	if err != nil || len(denied.Deny) != 1 || !strings.HasPrefix(denied.Deny[0], "unschedulable:") {
		t.Fatalf("unschedulable node: %+v, %v; want one unschedulable denial", denied, err)
	}
}

func TestPlacementWithoutPackageAcceptsAll(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "admission.rego"), []byte("package mycel.admission\n"), 0o644)
	e, err := LoadDir(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := e.Place(context.Background(), value(t, map[string]any{})); err != nil || v.Score != 0 || len(v.Deny) != 0 {
		t.Fatalf("no placement package: %+v, %v; want score 0, no denial", v, err)
	}
}

// TestReads: the engine knows which input fields its policies may read,
// erring on the side of everything when input is used as a whole.
func TestReads(t *testing.T) {
	e, err := Load(context.Background(), policies.Default, "policies")
	if err != nil {
		t.Fatal(err)
	}
	if e.Reads("pod") || !e.Reads("node") || !e.Reads("siblings") || !e.Reads("request") {
		t.Fatalf("default policies: reads pod %v, node %v, siblings %v, request %v; want all but pod",
			e.Reads("pod"), e.Reads("node"), e.Reads("siblings"), e.Reads("request"))
	}
	for src, readsPod := range map[string]bool{
		`score := 1 if input.node.name == "a"`:                       false,
		`score := count(input.pod.metadata.labels)`:                  true,
		`score := count(input["pod"].spec.containers)`:               true,
		`score := object.get(input, ["pod", "metadata", "name"], 0)`: true,
		`score := 1 if { some k; input[k].x == 1 }`:                  true,
		`doc := input` + "\n" + `score := count(doc)`:                true,
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "placement.rego"), []byte("package mycel.placement\n\n"+src+"\n"), 0o644)
		e, err := LoadDir(context.Background(), dir)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if got := e.Reads("pod"); got != readsPod {
			t.Errorf("%s: reads pod %v, want %v", src, got, readsPod)
		}
	}
}

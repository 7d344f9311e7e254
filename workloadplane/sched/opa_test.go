package sched

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mycelfabric/mycel/policies"
	"github.com/mycelfabric/mycel/securityplane/policy"
)

func testInput(zone string) PolicyInput {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "default", UID: "u1", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i", Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}}}}},
	}
	res := Resources{MilliCPU: 4000, MemoryBytes: 8 << 30, Pods: 110}
	return PolicyInput{
		Pod: pod, Requester: "spiffe://td/node/a",
		Node: NodeInput{Name: "n1", Zone: zone, Labels: map[string]string{"mycel.io/unschedulable": "false"}, Allocatable: res, Free: res.Sub(Requests(pod)), Requests: Requests(pod),
			PercentFreeAfter: Percentages{CPU: 87, Memory: 100}},
		Siblings: Siblings{Node: 1, Zone: 2},
	}
}

// TestPolicyInputIsItsJSON: the input built for OPA directly is exactly the
// documented JSON input a policy author reads.
func TestPolicyInputIsItsJSON(t *testing.T) {
	for _, zone := range []string{"", "z1"} {
		in := testInput(zone)
		got, err := in.regoValue()
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(in)
		want, err := ast.ValueFromReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if got.Compare(want) != 0 {
			t.Fatalf("zone %q:\n got %v\nwant %v", zone, got, want)
		}
	}
}

// BenchmarkOPAPlace is one candidate's evaluation of the default placement
// policy, input included.
func BenchmarkOPAPlace(b *testing.B) {
	e, err := policy.Load(context.Background(), policies.Default, "policies")
	if err != nil {
		b.Fatal(err)
	}
	p, in := OPA(e), testInput("z1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Place(context.Background(), in); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPercentLeft(t *testing.T) {
	for _, c := range []struct{ left, total, want int64 }{
		{3990, 4000, 99}, {4000, 4000, 100}, {0, 4000, 0}, {-10, 4000, 0}, {5, 0, 0}, {7 << 30, 8 << 30, 87},
	} {
		if got := percentLeft(c.left, c.total); got != c.want {
			t.Errorf("percentLeft(%d, %d) = %d, want %d", c.left, c.total, got, c.want)
		}
	}
}

// TestPolicyReadingThePodGetsIt: the pod is left out of the input only for
// policies that never read it.
func TestPolicyReadingThePodGetsIt(t *testing.T) {
	src := "package mycel.placement\n\ndeny contains \"no web pods here\" if input.pod.metadata.labels.app == \"web\"\n"
	e, err := policy.Load(context.Background(), fstest.MapFS{"placement.rego": {Data: []byte(src)}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	v, err := OPA(e).Place(context.Background(), testInput("z1"))
	if err != nil || len(v.Deny) != 1 {
		t.Fatalf("got %+v, %v; want the pod's label to deny", v, err)
	}
}

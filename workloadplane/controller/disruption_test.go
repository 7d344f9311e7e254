package controller

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

func (h *harness) pdb(name string, spec policyv1.PodDisruptionBudgetSpec) {
	p := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: spec}
	if err := h.objs.Create(h.ctx, p); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) pdbStatus(name string) policyv1.PodDisruptionBudgetStatus {
	p := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	if err := h.objs.Get(h.ctx, p); err != nil {
		h.t.Fatal(err)
	}
	return p.Status
}

// running returns the live pods, oldest name first.
func (h *harness) running() []corev1.Pod {
	var out []corev1.Pod
	for _, p := range h.pods() {
		if p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// settle runs controllers, placement and the kubelet until nothing changes.
func (h *harness) settle() {
	for range 5 {
		h.step()
		h.kubelet()
	}
	h.m.ReconcileAll(h.ctx)
}

func TestEvictionSpendsTheDisruptionBudget(t *testing.T) {
	h := newHarness(t)
	h.deployment("web", 3, intstr.FromInt32(1), intstr.FromInt32(0))
	h.settle()
	h.pdb("web", policyv1.PodDisruptionBudgetSpec{MinAvailable: new(intstr.FromInt32(2)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}})
	h.m.ReconcileAll(h.ctx)
	if st := h.pdbStatus("web"); st.ExpectedPods != 3 || st.DesiredHealthy != 2 || st.CurrentHealthy != 3 || st.DisruptionsAllowed != 1 {
		t.Fatalf("status %+v, want 3 expected, 2 desired, 3 healthy, 1 allowed", st)
	}
	pods := h.running()
	if err := h.objs.Evict(h.ctx, "default", pods[0].Name, objects.DeleteOptions{}, false); err != nil {
		t.Fatalf("first eviction: %v", err)
	}
	err := h.objs.Evict(h.ctx, "default", pods[1].Name, objects.DeleteOptions{}, false)
	se, _ := err.(*apierrors.StatusError)
	if !apierrors.IsTooManyRequests(err) || se == nil || len(se.ErrStatus.Details.Causes) != 1 ||
		se.ErrStatus.Details.Causes[0].Type != objects.DisruptionBudgetCause || !strings.Contains(se.ErrStatus.Details.Causes[0].Message, "needs 2 healthy pods") {
		t.Fatalf("second eviction at once: %v, want 429 naming the budget", err)
	}
	if st := h.pdbStatus("web"); st.DisruptionsAllowed != 0 || len(st.DisruptedPods) != 1 {
		t.Fatalf("after an eviction status %+v, want 0 allowed and the pod listed as disrupted", st)
	}
	// Once the replacement is ready the budget allows one again.
	h.settle()
	if st := h.pdbStatus("web"); st.DisruptionsAllowed != 1 || len(st.DisruptedPods) != 0 {
		t.Fatalf("after the replacement status %+v, want 1 allowed and none disrupted", st)
	}
	if err := h.objs.Evict(h.ctx, "default", pods[1].Name, objects.DeleteOptions{}, true); err != nil {
		t.Fatalf("dry-run eviction: %v", err)
	}
	if st := h.pdbStatus("web"); st.DisruptionsAllowed != 1 || len(h.running()) != 3 {
		t.Fatalf("a dry run changed something: %+v, %d running", st, len(h.running()))
	}

	// A second budget over the same pods makes them unevictable.
	h.pdb("web-too", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: new(intstr.FromString("34%")), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}})
	h.m.ReconcileAll(h.ctx)
	if st := h.pdbStatus("web-too"); st.ExpectedPods != 3 || st.DesiredHealthy != 1 || st.DisruptionsAllowed != 2 {
		t.Fatalf("maxUnavailable 34%% of the Deployment's 3: status %+v, want 3 expected, 1 desired (34%% of 3 rounds up to 2 unavailable), 2 allowed", st)
	}
	if err := h.objs.Evict(h.ctx, "default", pods[1].Name, objects.DeleteOptions{}, false); !apierrors.IsInternalError(err) || !strings.Contains(err.Error(), "more than one PodDisruptionBudget") {
		t.Fatalf("eviction of a pod under two budgets: %v", err)
	}
}

func TestBudgetOfBarePodsNeedsAnIntegerMinAvailable(t *testing.T) {
	h := newHarness(t)
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare", Namespace: "default", Labels: map[string]string{"app": "bare"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}
	if err := h.objs.Create(h.ctx, p); err != nil {
		t.Fatal(err)
	}
	h.pdb("bare", policyv1.PodDisruptionBudgetSpec{MaxUnavailable: new(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "bare"}}})
	h.m.ReconcileAll(h.ctx)
	st := h.pdbStatus("bare")
	if len(st.Conditions) != 1 || st.Conditions[0].Reason != policyv1.SyncFailedReason || !strings.Contains(st.Conditions[0].Message, "no controller") || st.DisruptionsAllowed != 0 {
		t.Fatalf("status %+v, want DisruptionAllowed=False SyncFailed saying the pod has no controller", st)
	}
	// A pending pod is evicted without asking the budget.
	if err := h.objs.Evict(h.ctx, "default", "bare", objects.DeleteOptions{}, false); err != nil {
		t.Fatalf("eviction of a pending pod: %v", err)
	}
}

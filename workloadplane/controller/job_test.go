package controller

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

func (h *harness) job(name string, spec batchv1.JobSpec) *batchv1.Job {
	h.t.Helper()
	spec.Template.Spec.Containers = []corev1.Container{{Name: "c", Image: "img:1"}}
	spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: spec}
	if err := h.objs.Create(h.ctx, j); err != nil {
		h.t.Fatal(err)
	}
	return j
}

func (h *harness) getJob(name string) *batchv1.Job {
	h.t.Helper()
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	if err := h.objs.Get(h.ctx, j); err != nil {
		h.t.Fatal(err)
	}
	return j
}

// finish ends n of the job's running pods with phase.
func (h *harness) finish(n int, phase corev1.PodPhase) {
	h.t.Helper()
	for _, p := range h.pods() {
		if n == 0 {
			return
		}
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed || p.DeletionTimestamp != nil {
			continue
		}
		p.Status.Phase = phase
		if err := h.objs.UpdateStatus(h.ctx, &p); err != nil {
			h.t.Fatal(err)
		}
		n--
	}
}

func activePods(pods []corev1.Pod) int {
	n := 0
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.Phase != corev1.PodSucceeded && p.Status.Phase != corev1.PodFailed {
			n++
		}
	}
	return n
}

func cells(t *testing.T, h *harness, j *batchv1.Job) []any {
	r, err := h.objs.ResourceOf(j)
	if err != nil {
		t.Fatal(err)
	}
	return r.Cells(j, time.Now())
}

func TestJobRunsToItsCompletions(t *testing.T) {
	h := newHarness(t)
	h.job("batch", batchv1.JobSpec{Completions: new(int32(3)), Parallelism: new(int32(2))})
	h.step()
	if n := activePods(h.pods()); n != 2 {
		t.Fatalf("%d pods running, want parallelism 2", n)
	}
	h.finish(1, corev1.PodSucceeded)
	h.step()
	if j := h.getJob("batch"); activePods(h.pods()) != 2 || j.Status.Succeeded != 1 || j.Status.StartTime == nil {
		t.Fatalf("after one success: %d running, status %+v", activePods(h.pods()), j.Status)
	}
	h.finish(2, corev1.PodSucceeded)
	h.step()
	j := h.getJob("batch")
	if !objects.JobCondition(j, batchv1.JobComplete) || j.Status.CompletionTime == nil || j.Status.Succeeded != 3 || activePods(h.pods()) != 0 {
		t.Fatalf("after three successes: %+v", j.Status)
	}
	if c := cells(t, h, j); c[1] != "Complete" || c[2] != "3/3" {
		t.Fatalf("kubectl get jobs shows %v", c)
	}
	if len(h.pods()) != 3 {
		t.Fatal("the completed pods are not kept (kubectl logs needs them)")
	}
}

func TestJobFailsPastItsBackoffLimit(t *testing.T) {
	h := newHarness(t)
	h.job("flaky", batchv1.JobSpec{BackoffLimit: new(int32(1))})
	h.step()
	h.finish(1, corev1.PodFailed)
	h.step()
	if j := h.getJob("flaky"); objects.JobCondition(j, batchv1.JobFailed) || activePods(h.pods()) != 1 {
		t.Fatalf("after one failure (limit 1): %+v, %d running; want a retry", j.Status, activePods(h.pods()))
	}
	h.finish(1, corev1.PodFailed)
	h.step()
	if j := h.getJob("flaky"); !objects.JobCondition(j, batchv1.JobFailed) || j.Status.Conditions[0].Reason != "BackoffLimitExceeded" || j.Status.Failed != 2 {
		t.Fatalf("after two failures: %+v", j.Status)
	}
}

func TestIndexedJobRunsEachIndexOnce(t *testing.T) {
	h := newHarness(t)
	h.job("shards", batchv1.JobSpec{Completions: new(int32(3)), Parallelism: new(int32(3)), CompletionMode: new(batchv1.IndexedCompletion)})
	h.step()
	seen := map[string]bool{}
	for _, p := range h.pods() {
		i := p.Annotations[objects.JobCompletionIndex]
		if seen[i] || p.Spec.Hostname != "shards-"+i || p.Spec.Containers[0].Env[0].Name != "JOB_COMPLETION_INDEX" {
			t.Fatalf("pod %s: index %q, hostname %q, env %v", p.Name, i, p.Spec.Hostname, p.Spec.Containers[0].Env)
		}
		seen[i] = true
	}
	if len(seen) != 3 {
		t.Fatalf("indexes %v, want 0, 1 and 2", seen)
	}
	// Index 1 fails: only it is started again.
	for _, p := range h.pods() {
		switch p.Annotations[objects.JobCompletionIndex] {
		case "1":
			p.Status.Phase = corev1.PodFailed
		default:
			p.Status.Phase = corev1.PodSucceeded
		}
		h.objs.UpdateStatus(h.ctx, &p)
	}
	h.step()
	if j := h.getJob("shards"); j.Status.CompletedIndexes != "0,2" || activePods(h.pods()) != 1 {
		t.Fatalf("completed %q with %d running", j.Status.CompletedIndexes, activePods(h.pods()))
	}
	h.finish(1, corev1.PodSucceeded)
	h.step()
	if j := h.getJob("shards"); j.Status.CompletedIndexes != "0-2" || !objects.JobCondition(j, batchv1.JobComplete) {
		t.Fatalf("status %+v", j.Status)
	}
}

func TestJobDeadlineAndTTL(t *testing.T) {
	h := newHarness(t)
	now := time.Now()
	m, err := New(Config{Client: h.objs, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	h.m = m
	h.job("slow", batchv1.JobSpec{ActiveDeadlineSeconds: new(int64(10)), TTLSecondsAfterFinished: new(int32(5))})
	h.step()
	now = now.Add(11 * time.Second)
	h.step()
	j := h.getJob("slow")
	if !objects.JobCondition(j, batchv1.JobFailed) || j.Status.Conditions[0].Reason != "DeadlineExceeded" || activePods(h.pods()) != 0 {
		t.Fatalf("past its deadline: %+v, %d running", j.Status, activePods(h.pods()))
	}
	now = now.Add(6 * time.Second)
	h.step()
	if err := h.objs.Get(h.ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "slow", Namespace: "default"}}); !apierrors.IsNotFound(err) {
		t.Fatalf("finished Job past its TTL: %v, want deleted", err)
	}
}

func TestJobValidation(t *testing.T) {
	h := newHarness(t)
	j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "default"}, Spec: batchv1.JobSpec{
		Completions: new(int32(-1)),
		Template:    corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}}}}}
	err := h.objs.Create(h.ctx, j)
	if !apierrors.IsInvalid(err) {
		t.Fatalf("create: %v", err)
	}
	for _, want := range []string{"spec.completions", "spec.template.spec.restartPolicy"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	j = &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "pfp", Namespace: "default"}, Spec: batchv1.JobSpec{PodFailurePolicy: &batchv1.PodFailurePolicy{},
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "i"}}}}}}
	if err := h.objs.Create(h.ctx, j); !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "not supported by Mycel yet") {
		t.Fatalf("podFailurePolicy: %v", err)
	}
}

package controller

import (
	"context"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mycelfabric/mycel/workloadplane/objects"
	"github.com/mycelfabric/mycel/workloadplane/store"
)

// cronHarness has two controller managers, a and b, over one store with
// an injected clock; owner says which of them owns the CronJobs.
type cronHarness struct {
	t     *testing.T
	ctx   context.Context
	now   time.Time
	objs  *objects.Objects
	a, b  *Manager
	owner *Manager
}

func newCronHarness(t *testing.T, start time.Time) *cronHarness {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &cronHarness{t: t, ctx: context.Background(), now: start}
	clock := func() time.Time { return h.now }
	h.objs = objects.New(st, objects.Config{Now: clock})
	h.objs.Create(h.ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}})
	mk := func() *Manager {
		var m *Manager
		m, err := New(Config{Client: h.objs, Now: clock, Owns: func(types.UID) bool { return h.owner == m }})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	h.a, h.b = mk(), mk()
	h.owner = h.a
	return h
}

func (h *cronHarness) cronJob(name, schedule string, mod func(*batchv1.CronJobSpec)) {
	h.t.Helper()
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}, Spec: batchv1.CronJobSpec{
		Schedule: schedule,
		JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "img:1"}}}}}},
	}}
	if mod != nil {
		mod(&cj.Spec)
	}
	if err := h.objs.Create(h.ctx, cj); err != nil {
		h.t.Fatal(err)
	}
}

func (h *cronHarness) jobs() []batchv1.Job {
	var l batchv1.JobList
	if err := h.objs.List(h.ctx, &l, "default", nil); err != nil {
		h.t.Fatal(err)
	}
	slices.SortFunc(l.Items, func(a, b batchv1.Job) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	return l.Items
}

func (h *cronHarness) cronJobStatus(name string) batchv1.CronJobStatus {
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	if err := h.objs.Get(h.ctx, cj); err != nil {
		h.t.Fatal(err)
	}
	return cj.Status
}

func (h *cronHarness) complete(j batchv1.Job) {
	h.t.Helper()
	j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue})
	j.Status.CompletionTime = &metav1.Time{Time: h.now}
	if err := h.objs.UpdateStatus(h.ctx, &j); err != nil {
		h.t.Fatal(err)
	}
}

// TestCronJobRunsEachTimeOnceAcrossOwners: over 12 minutes of an
// every-minute CronJob, ownership moves between two nodes, both reconcile
// during handovers and some times are reconciled many times: exactly one
// Job per schedule time, named after it.
func TestCronJobRunsEachTimeOnceAcrossOwners(t *testing.T) {
	h := newCronHarness(t, time.Date(2026, 12, 2, 10, 0, 30, 0, time.UTC))
	h.cronJob("tick", "* * * * *", func(s *batchv1.CronJobSpec) { s.SuccessfulJobsHistoryLimit = new(int32(100)) })
	for minute := 1; minute <= 12; minute++ {
		h.now = h.now.Add(time.Minute)
		if minute%3 == 0 {
			// A handover: the old owner makes this time's Job, but its
			// status update is lost (the new owner reads the status from
			// before); both then act.
			before := h.cronJobStatus("tick")
			h.owner.ReconcileAll(h.ctx)
			cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "tick", Namespace: "default"}}
			h.objs.Get(h.ctx, cj)
			cj.Status = before
			if err := h.objs.UpdateStatus(h.ctx, cj); err != nil {
				t.Fatal(err)
			}
			if h.owner == h.a {
				h.owner = h.b
			} else {
				h.owner = h.a
			}
		}
		h.a.ReconcileAll(h.ctx)
		h.b.ReconcileAll(h.ctx)
		h.owner.ReconcileAll(h.ctx)
	}
	jobs := h.jobs()
	if len(jobs) != 12 {
		t.Fatalf("%d Jobs for 12 schedule times", len(jobs))
	}
	for i, j := range jobs {
		want := time.Date(2026, 12, 2, 10, 1+i, 0, 0, time.UTC)
		if j.Annotations[objects.CronJobScheduledAnnotation] != want.Format(time.RFC3339) || j.Name != "tick-"+strconv.FormatInt(want.Unix()/60, 10) {
			t.Fatalf("job %d: %s for %s, want the time %s", i, j.Name, j.Annotations[objects.CronJobScheduledAnnotation], want)
		}
	}
	if st := h.cronJobStatus("tick"); len(st.Active) != 12 || !st.LastScheduleTime.Equal(&metav1.Time{Time: time.Date(2026, 12, 2, 10, 12, 0, 0, time.UTC)}) {
		t.Fatalf("status: %d active, last schedule %v", len(st.Active), st.LastScheduleTime)
	}
}

// TestCronJobPolicies: a missed stretch runs only its most recent time,
// Forbid waits for the active Job, Replace replaces it, a starting deadline
// skips times too late, and the history keeps its limits.
func TestCronJobPolicies(t *testing.T) {
	start := time.Date(2026, 12, 2, 10, 0, 30, 0, time.UTC)
	t.Run("missed", func(t *testing.T) {
		h := newCronHarness(t, start)
		h.cronJob("m", "*/5 * * * *", nil)
		h.now = start.Add(time.Hour) // twelve times passed
		h.a.ReconcileAll(h.ctx)
		if jobs := h.jobs(); len(jobs) != 1 || jobs[0].Annotations[objects.CronJobScheduledAnnotation] != "2026-12-02T11:00:00Z" {
			t.Fatalf("after a missed hour: %v", names(jobs))
		}
	})
	t.Run("far behind", func(t *testing.T) {
		// A week of every-minute times: the controller skips ahead rather
		// than stepping through 10,080 of them, and runs only the last.
		h := newCronHarness(t, start)
		h.cronJob("w", "* * * * *", nil)
		h.now = start.Add(7 * 24 * time.Hour)
		h.a.ReconcileAll(h.ctx)
		if jobs := h.jobs(); len(jobs) != 1 || jobs[0].Annotations[objects.CronJobScheduledAnnotation] != "2026-12-09T10:00:00Z" {
			t.Fatalf("after a missed week: %v", names(jobs))
		}
	})
	t.Run("forbid", func(t *testing.T) {
		h := newCronHarness(t, start)
		h.cronJob("f", "* * * * *", func(s *batchv1.CronJobSpec) { s.ConcurrencyPolicy = batchv1.ForbidConcurrent })
		h.now = start.Add(time.Minute)
		h.a.ReconcileAll(h.ctx)
		h.now = start.Add(2 * time.Minute)
		h.a.ReconcileAll(h.ctx)
		if n := len(h.jobs()); n != 1 {
			t.Fatalf("Forbid with a Job running: %d Jobs", n)
		}
		h.complete(h.jobs()[0])
		h.a.ReconcileAll(h.ctx)
		if jobs := h.jobs(); len(jobs) != 2 || jobs[1].Annotations[objects.CronJobScheduledAnnotation] != "2026-12-02T10:02:00Z" {
			t.Fatalf("Forbid after the Job finished: %v", names(jobs))
		}
	})
	t.Run("replace", func(t *testing.T) {
		h := newCronHarness(t, start)
		h.cronJob("r", "* * * * *", func(s *batchv1.CronJobSpec) { s.ConcurrencyPolicy = batchv1.ReplaceConcurrent })
		h.now = start.Add(time.Minute)
		h.a.ReconcileAll(h.ctx)
		first := h.jobs()[0].Name
		h.now = start.Add(2 * time.Minute)
		h.a.ReconcileAll(h.ctx)
		jobs := h.jobs()
		for _, j := range jobs {
			if j.Name == first && j.DeletionTimestamp == nil {
				t.Fatalf("Replace kept the earlier Job: %v", names(jobs))
			}
		}
	})
	t.Run("deadline", func(t *testing.T) {
		h := newCronHarness(t, start)
		h.cronJob("d", "0 * * * *", func(s *batchv1.CronJobSpec) { s.StartingDeadlineSeconds = new(int64(60)) })
		h.now = start.Add(time.Hour + 105*time.Second) // 11:02:15, 135 s after 11:00
		h.a.ReconcileAll(h.ctx)
		if n := len(h.jobs()); n != 0 {
			t.Fatalf("a time past its starting deadline ran: %v", names(h.jobs()))
		}
		h.now = start.Add(2*time.Hour - 15*time.Second) // 12:00:15
		h.a.ReconcileAll(h.ctx)
		if n := len(h.jobs()); n != 1 {
			t.Fatalf("a time within its starting deadline: %v", names(h.jobs()))
		}
	})
	t.Run("history", func(t *testing.T) {
		h := newCronHarness(t, start)
		h.cronJob("hist", "* * * * *", func(s *batchv1.CronJobSpec) { s.SuccessfulJobsHistoryLimit = new(int32(1)) })
		for i := 1; i <= 3; i++ {
			h.now = start.Add(time.Duration(i) * time.Minute)
			h.a.ReconcileAll(h.ctx)
			for _, j := range h.jobs() {
				if !objects.JobCondition(&j, batchv1.JobComplete) {
					h.complete(j)
				}
			}
		}
		h.a.ReconcileAll(h.ctx)
		if jobs := h.jobs(); len(jobs) != 1 || jobs[0].Annotations[objects.CronJobScheduledAnnotation] != "2026-12-02T10:03:00Z" {
			t.Fatalf("successfulJobsHistoryLimit 1 kept %v", names(jobs))
		}
	})
	t.Run("time zone", func(t *testing.T) {
		h := newCronHarness(t, start)
		h.cronJob("tz", "1 19 * * *", func(s *batchv1.CronJobSpec) { s.TimeZone = new("Asia/Tokyo") })
		h.now = time.Date(2026, 12, 2, 10, 1, 5, 0, time.UTC) // 19:01:05 in Tokyo
		h.a.ReconcileAll(h.ctx)
		if jobs := h.jobs(); len(jobs) != 1 || jobs[0].Annotations[objects.CronJobScheduledAnnotation] != "2026-12-02T19:01:00+09:00" {
			t.Fatalf("19:01 in Asia/Tokyo: %v", names(jobs))
		}
	})
}

func names(jobs []batchv1.Job) []string {
	var out []string
	for _, j := range jobs {
		out = append(out, j.Name+"@"+j.Annotations[objects.CronJobScheduledAnnotation])
	}
	return out
}

// TestCronJobValidation: kube-apiserver's rules give 422 with field paths.
func TestCronJobValidation(t *testing.T) {
	h := newCronHarness(t, time.Now())
	for _, tc := range []struct {
		name, schedule string
		mod            func(*batchv1.CronJobSpec)
		want           string
	}{
		{"bad", "61 * * * *", nil, "spec.schedule"},
		{"tz-in-schedule", "CRON_TZ=UTC 0 * * * *", nil, "spec.schedule"},
		{"zone", "0 * * * *", func(s *batchv1.CronJobSpec) { s.TimeZone = new("Mars/Olympus") }, "spec.timeZone"},
		{"deadline", "0 * * * *", func(s *batchv1.CronJobSpec) { s.StartingDeadlineSeconds = new(int64(-1)) }, "spec.startingDeadlineSeconds"},
		{"policy", "0 * * * *", func(s *batchv1.CronJobSpec) { s.ConcurrencyPolicy = "Sometimes" }, "spec.concurrencyPolicy"},
		{"restart", "0 * * * *", func(s *batchv1.CronJobSpec) {
			s.JobTemplate.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways
		}, "spec.jobTemplate.spec.template.spec.restartPolicy"},
		{"a-name-that-is-far-too-long-for-a-cronjob-because-of-job-suffixes", "0 * * * *", nil, "metadata.name"},
	} {
		cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: tc.name, Namespace: "default"}, Spec: batchv1.CronJobSpec{
			Schedule: tc.schedule,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyOnFailure, Containers: []corev1.Container{{Name: "c", Image: "img:1"}}}}}},
		}}
		if tc.mod != nil {
			tc.mod(&cj.Spec)
		}
		err := h.objs.Create(h.ctx, cj)
		var se apierrors.APIStatus
		if !apierrors.IsInvalid(err) || !asStatus(err, &se) || !hasCause(se, tc.want) {
			t.Errorf("%s: %v, want 422 on %s", tc.name, err, tc.want)
		}
	}
}

func asStatus(err error, se *apierrors.APIStatus) bool {
	s, ok := err.(apierrors.APIStatus)
	*se = s
	return ok
}

func hasCause(se apierrors.APIStatus, field string) bool {
	if se.Status().Details == nil {
		return false
	}
	for _, c := range se.Status().Details.Causes {
		if c.Field == field {
			return true
		}
	}
	return false
}

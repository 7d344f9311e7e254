package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

const jobComponent = "job-controller"

// reconcileJobs runs every Job's pods to completion, as Kubernetes' Job
// controller does: up to parallelism at once until completions have
// succeeded (each index once, for Indexed Jobs), Failed once more than
// backoffLimit pods failed or activeDeadlineSeconds passed, and deleted
// ttlSecondsAfterFinished after it finished.
func (m *Manager) reconcileJobs(ctx context.Context) error {
	var jobs batchv1.JobList
	if err := m.c.List(ctx, &jobs, "", nil); err != nil {
		return err
	}
	if len(jobs.Items) == 0 {
		return nil
	}
	owned, err := m.podsByController(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if j.DeletionTimestamp != nil || !m.cfg.Owns(m.chain.WorkloadKey(j)) {
			continue
		}
		if err := m.syncJob(ctx, j, owned[j.UID]); err != nil {
			errs = append(errs, fmt.Errorf("job %s/%s: %w", j.Namespace, j.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) syncJob(ctx context.Context, j *batchv1.Job, pods []*corev1.Pod) error {
	now := m.cfg.Now()
	if finished := finishedAt(j); finished != nil {
		if ttl := j.Spec.TTLSecondsAfterFinished; ttl != nil && !now.Before(finished.Add(time.Duration(*ttl)*time.Second)) {
			return m.c.Delete(ctx, j, nil) // its pods go with it (garbage collection)
		}
		return nil
	}
	indexed := ptrOr(j.Spec.CompletionMode, batchv1.NonIndexedCompletion) == batchv1.IndexedCompletion
	var active []*corev1.Pod
	succeeded, failed := 0, 0
	done := map[int]bool{} // succeeded indexes
	for _, p := range pods {
		switch {
		case p.Status.Phase == corev1.PodSucceeded:
			succeeded++
			if i, ok := podIndex(p); ok {
				done[i] = true
			}
		case p.Status.Phase == corev1.PodFailed:
			failed++
		case p.DeletionTimestamp == nil:
			active = append(active, p)
		}
	}
	if indexed {
		succeeded = len(done)
	}
	st := j.Status.DeepCopy()
	if st.StartTime == nil && !ptrOr(j.Spec.Suspend, false) {
		st.StartTime = &metav1.Time{Time: now.Truncate(time.Second)}
	}
	completions := -1
	if j.Spec.Completions != nil {
		completions = int(*j.Spec.Completions)
	}
	parallelism := int(ptrOr(j.Spec.Parallelism, 1))
	finish := func(t batchv1.JobConditionType, reason, msg string) {
		cond := batchv1.JobCondition{Type: t, Status: corev1.ConditionTrue, Reason: reason, Message: msg,
			LastProbeTime: metav1.NewTime(now), LastTransitionTime: metav1.NewTime(now)}
		st.Conditions = append(st.Conditions, cond)
		if t == batchv1.JobComplete {
			st.CompletionTime = &metav1.Time{Time: now.Truncate(time.Second)}
		}
		for _, p := range active {
			m.c.Delete(ctx, p, nil)
		}
		active = nil
		evType := corev1.EventTypeNormal
		if t == batchv1.JobFailed {
			evType = corev1.EventTypeWarning
		}
		m.c.Record(ctx, j, jobComponent, evType, reason, msg)
	}
	switch {
	case ptrOr(j.Spec.Suspend, false):
		for _, p := range active {
			m.c.Delete(ctx, p, nil)
		}
		active = nil
	case j.Spec.ActiveDeadlineSeconds != nil && st.StartTime != nil && !now.Before(st.StartTime.Add(time.Duration(*j.Spec.ActiveDeadlineSeconds)*time.Second)):
		finish(batchv1.JobFailed, "DeadlineExceeded", "Job was active longer than specified deadline")
	case failed > int(ptrOr(j.Spec.BackoffLimit, 6)):
		finish(batchv1.JobFailed, "BackoffLimitExceeded", "Job has reached the specified backoff limit")
	case completions >= 0 && succeeded >= completions, completions < 0 && succeeded > 0 && len(active) == 0:
		finish(batchv1.JobComplete, "Completed", "Job completed")
	case completions < 0 && succeeded > 0:
		// A work queue: once one pod succeeded, no new ones start; the Job
		// completes when the running ones end.
	default:
		want := parallelism
		if completions >= 0 {
			want = min(parallelism, completions-succeeded)
		}
		running := map[int]bool{}
		for _, p := range active {
			if i, ok := podIndex(p); ok {
				running[i] = true
			}
		}
		next := 0
		for n := len(active); n < want; n++ {
			idx := -1
			if indexed {
				for done[next] || running[next] {
					next++
				}
				if next >= completions {
					break
				}
				idx, running[next] = next, true
			}
			pod := jobPod(j, idx)
			if err := m.c.Create(ctx, pod); err != nil {
				m.c.Record(ctx, j, jobComponent, corev1.EventTypeWarning, "FailedCreate", fmt.Sprintf("Error creating: %v", err))
				return err
			}
			m.c.Record(ctx, j, jobComponent, corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: "+pod.Name)
			active = append(active, pod)
		}
	}
	st.Active, st.Succeeded, st.Failed = int32(len(active)), int32(succeeded), int32(failed)
	ready := int32(0)
	for _, p := range active {
		if podReady(p) {
			ready++
		}
	}
	st.Ready = &ready
	if indexed {
		st.CompletedIndexes = formatIndexes(done)
	}
	if equality.Semantic.DeepEqual(st, &j.Status) {
		return nil
	}
	j.Status = *st
	return m.c.UpdateStatus(ctx, j)
}

// finishedAt is when a Job completed or failed, nil while it runs.
func finishedAt(j *batchv1.Job) *time.Time {
	for _, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return &c.LastTransitionTime.Time
		}
	}
	return nil
}

// jobPod is a new pod of j; index is its completion index (-1 for
// NonIndexed Jobs), in its annotation, label, hostname and
// JOB_COMPLETION_INDEX, as Kubernetes sets them.
func jobPod(j *batchv1.Job, index int) *corev1.Pod {
	pod := podFromTemplate(j, batchv1.SchemeGroupVersion.WithKind("Job"), &j.Spec.Template)
	if index >= 0 {
		i := strconv.Itoa(index)
		pod.GenerateName = j.Name + "-" + i + "-"
		if pod.Annotations == nil {
			pod.Annotations = map[string]string{}
		}
		if pod.Labels == nil {
			pod.Labels = map[string]string{}
		}
		pod.Annotations[objects.JobCompletionIndex] = i
		pod.Labels[objects.JobCompletionIndex] = i
		if pod.Spec.Hostname == "" {
			pod.Spec.Hostname = j.Name + "-" + i
		}
		for _, cs := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
			for k := range cs {
				cs[k].Env = append(cs[k].Env, corev1.EnvVar{Name: "JOB_COMPLETION_INDEX", ValueFrom: &corev1.EnvVarSource{
					FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + objects.JobCompletionIndex + "']"}}})
			}
		}
	}
	return pod
}

func podIndex(p *corev1.Pod) (int, bool) {
	v, ok := p.Annotations[objects.JobCompletionIndex]
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(v)
	return i, err == nil && i >= 0
}

// formatIndexes renders completed indexes as Kubernetes does: "0-2,5".
func formatIndexes(done map[int]bool) string {
	var idx []int
	for i := range done {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	var parts []string
	for k := 0; k < len(idx); {
		end := k
		for end+1 < len(idx) && idx[end+1] == idx[end]+1 {
			end++
		}
		if end == k {
			parts = append(parts, strconv.Itoa(idx[k]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", idx[k], idx[end]))
		}
		k = end + 1
	}
	return strings.Join(parts, ",")
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

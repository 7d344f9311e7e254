package controller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mycelfabric/mycel/workloadplane/objects"
)

const cronJobComponent = "cronjob-controller"

// tooManyMissed is where Kubernetes stops counting missed schedule times
// and warns.
const tooManyMissed = 100

// reconcileCronJobs makes the Job of each CronJob's schedule time as
// Kubernetes' CronJob controller does: the most recent time not yet run
// (within startingDeadlineSeconds), under the concurrency policy, and
// keeps the history limits. A Job's name is derived from its schedule time
// (`<cronjob>-<minutes since the epoch>`), so a time runs once however
// often, and on however many owners in turn, it is reconciled.
func (m *Manager) reconcileCronJobs(ctx context.Context) error {
	var cjs batchv1.CronJobList
	if err := m.c.List(ctx, &cjs, "", nil); err != nil {
		return err
	}
	if len(cjs.Items) == 0 {
		return nil
	}
	var jobs batchv1.JobList
	if err := m.c.List(ctx, &jobs, "", nil); err != nil {
		return err
	}
	byOwner := map[types.UID][]*batchv1.Job{}
	for i := range jobs.Items {
		j := &jobs.Items[i]
		if uid := controllerOf(j); uid != "" {
			byOwner[uid] = append(byOwner[uid], j)
		}
	}
	var errs []error
	for i := range cjs.Items {
		cj := &cjs.Items[i]
		if cj.DeletionTimestamp != nil || !m.cfg.Owns(m.chain.WorkloadKey(cj)) {
			continue
		}
		if err := m.syncCronJob(ctx, cj, byOwner[cj.UID]); err != nil {
			errs = append(errs, fmt.Errorf("cronjob %s/%s: %w", cj.Namespace, cj.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) syncCronJob(ctx context.Context, cj *batchv1.CronJob, jobs []*batchv1.Job) error {
	now := m.cfg.Now()
	st := cj.Status.DeepCopy()
	st.Active = nil
	var active, succeeded, failed []*batchv1.Job
	for _, j := range jobs {
		switch {
		case objects.JobCondition(j, batchv1.JobComplete):
			succeeded = append(succeeded, j)
			if t := j.Status.CompletionTime; t != nil && (st.LastSuccessfulTime == nil || st.LastSuccessfulTime.Before(t)) {
				st.LastSuccessfulTime = t.DeepCopy()
			}
		case objects.JobCondition(j, batchv1.JobFailed):
			failed = append(failed, j)
		case j.DeletionTimestamp == nil:
			active = append(active, j)
		}
	}
	if err := m.pruneJobs(ctx, succeeded, ptrOr(cj.Spec.SuccessfulJobsHistoryLimit, 3)); err != nil {
		return err
	}
	if err := m.pruneJobs(ctx, failed, ptrOr(cj.Spec.FailedJobsHistoryLimit, 1)); err != nil {
		return err
	}
	if !ptrOr(cj.Spec.Suspend, false) {
		made, err := m.runSchedule(ctx, cj, st, jobs, &active, now)
		if err != nil {
			return err
		}
		if made != nil {
			active = append(active, made)
		}
	}
	for _, j := range active {
		st.Active = append(st.Active, corev1.ObjectReference{Kind: "Job", APIVersion: "batch/v1", Namespace: j.Namespace, Name: j.Name, UID: j.UID, ResourceVersion: j.ResourceVersion})
	}
	if equality.Semantic.DeepEqual(st, &cj.Status) {
		return nil
	}
	cj.Status = *st
	return m.c.UpdateStatus(ctx, cj)
}

// runSchedule makes the Job of the most recent schedule time not yet run,
// if the concurrency policy lets it, and asks to be woken at the next one.
func (m *Manager) runSchedule(ctx context.Context, cj *batchv1.CronJob, st *batchv1.CronJobStatus, jobs []*batchv1.Job, active *[]*batchv1.Job, now time.Time) (*batchv1.Job, error) {
	sched, loc, err := objects.CronSchedule(cj)
	if err != nil {
		m.c.Record(ctx, cj, cronJobComponent, corev1.EventTypeWarning, "InvalidSchedule", fmt.Sprintf("invalid schedule %q: %v", cj.Spec.Schedule, err))
		return nil, nil
	}
	m.wakeAt(sched.Next(now.In(loc)))
	earliest := cj.CreationTimestamp.Time
	if st.LastScheduleTime != nil {
		earliest = st.LastScheduleTime.Time
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil {
		earliest = latest(earliest, now.Add(-time.Duration(*d)*time.Second))
	}
	tick, missed := mostRecentTick(sched, earliest.In(loc), now)
	if tick.IsZero() {
		return nil, nil
	}
	if missed > tooManyMissed {
		m.c.Record(ctx, cj, cronJobComponent, corev1.EventTypeWarning, "TooManyMissedTimes",
			fmt.Sprintf("too many missed start times: %d; check clock skew or set startingDeadlineSeconds", missed))
	}
	name := fmt.Sprintf("%s-%d", cj.Name, tick.Unix()/60)
	if slices.ContainsFunc(jobs, func(j *batchv1.Job) bool { return j.Name == name }) {
		st.LastScheduleTime = &metav1.Time{Time: tick}
		return nil, nil
	}
	switch cj.Spec.ConcurrencyPolicy {
	case batchv1.ForbidConcurrent:
		if len(*active) > 0 {
			// The time stays due: it runs once the active Job ends, if
			// still within the starting deadline.
			m.c.Record(ctx, cj, cronJobComponent, corev1.EventTypeNormal, "JobAlreadyActive", "Not starting job because prior execution is running and concurrency policy is Forbid")
			return nil, nil
		}
	case batchv1.ReplaceConcurrent:
		for _, j := range *active {
			if err := m.c.Delete(ctx, j, nil); err != nil && !apierrors.IsNotFound(err) {
				return nil, err
			}
			m.c.Record(ctx, cj, cronJobComponent, corev1.EventTypeNormal, "SuccessfulDelete", "Deleted job "+j.Name)
		}
		*active = nil
	}
	j := cronJobJob(cj, name, tick)
	switch err := m.c.Create(ctx, j); {
	case apierrors.IsAlreadyExists(err):
		// made by an earlier owner, not yet listed here
	case err != nil:
		m.c.Record(ctx, cj, cronJobComponent, corev1.EventTypeWarning, "FailedCreate", fmt.Sprintf("Error creating job: %v", err))
		return nil, err
	default:
		m.c.Record(ctx, cj, cronJobComponent, corev1.EventTypeNormal, "SuccessfulCreate", "Created job "+name)
	}
	st.LastScheduleTime = &metav1.Time{Time: tick}
	return j, nil
}

// mostRecentTick is the last schedule time after earliest and not after
// now, and how many there were. Far behind an evenly spaced schedule, it
// skips ahead as Kubernetes does instead of stepping through every time.
func mostRecentTick(sched cron.Schedule, earliest, now time.Time) (time.Time, int) {
	t := sched.Next(earliest)
	if t.After(now) {
		return time.Time{}, 0
	}
	missed := 0
	if next := sched.Next(t); next.After(t) {
		if d := next.Sub(t); now.Sub(t) > tooManyMissed*d {
			skip := int(now.Sub(t)/d) - 1
			missed = skip
			t = sched.Next(t.Add(time.Duration(skip)*d - time.Second))
		}
	}
	var last time.Time
	for !t.After(now) {
		last = t
		missed++
		t = sched.Next(t)
	}
	return last, missed
}

// cronJobJob is the Job of cj for schedule time tick, as Kubernetes makes
// it from the template.
func cronJobJob(cj *batchv1.CronJob, name string, tick time.Time) *batchv1.Job {
	t := cj.Spec.JobTemplate.DeepCopy()
	ann := t.Annotations
	if ann == nil {
		ann = map[string]string{}
	}
	ann[objects.CronJobScheduledAnnotation] = tick.Format(time.RFC3339)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: cj.Namespace, Labels: t.Labels, Annotations: ann,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))},
		},
		Spec: t.Spec,
	}
}

// pruneJobs deletes the oldest finished Jobs beyond limit.
func (m *Manager) pruneJobs(ctx context.Context, jobs []*batchv1.Job, limit int32) error {
	if len(jobs) <= int(limit) {
		return nil
	}
	slices.SortFunc(jobs, func(a, b *batchv1.Job) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	for _, j := range jobs[:len(jobs)-int(limit)] {
		if err := m.c.Delete(ctx, j, nil); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	return nil
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

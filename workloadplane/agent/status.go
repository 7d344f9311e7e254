package agent

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

func terminated(c rt.Container) *corev1.ContainerStateTerminated {
	reason := "Completed"
	switch {
	case c.OOMKilled:
		reason = "OOMKilled"
	case c.ExitCode != 0:
		reason = "Error"
	}
	return &corev1.ContainerStateTerminated{
		ExitCode: c.ExitCode, Reason: reason, Message: c.Error,
		StartedAt: metav1.NewTime(c.StartedAt), FinishedAt: metav1.NewTime(c.FinishedAt),
		ContainerID: "podman://" + c.ID,
	}
}

// containerStatus derives one container's status from its attempts; policy
// decides whether an exited one is restarting (CrashLoopBackOff) or done.
func (a *Agent) containerStatus(ps *podSync, c *corev1.Container, tries []rt.Container, policy corev1.RestartPolicy) corev1.ContainerStatus {
	pod := ps.pod
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, Started: ptr(false)}
	if len(tries) == 0 {
		a.mu.Lock()
		ws, ok := a.waits[waitKey(pod, c.Name)]
		a.mu.Unlock()
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
		if ok {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: ws.reason, Message: ws.message}
		}
		return cs
	}
	latest := tries[len(tries)-1]
	cs.RestartCount = int32(attemptOf(latest))
	cs.ContainerID = "podman://" + latest.ID
	cs.ImageID = latest.ImageID
	if len(tries) > 1 {
		cs.LastTerminationState.Terminated = terminated(tries[len(tries)-2])
	}
	switch latest.State {
	case rt.StateRunning:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(latest.StartedAt)}
		started, ready := a.probed(pod, c, latest)
		cs.Started, cs.Ready = ptr(started), ready
	case rt.StateExited:
		term := terminated(latest)
		if shouldRestart(policy, latest.ExitCode) {
			cs.LastTerminationState = corev1.ContainerState{Terminated: term}
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
				Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", a.backoff(attemptOf(latest)+1), c.Name, pod.Name)}
		} else {
			cs.State.Terminated = term
		}
	default:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
	}
	return cs
}

// updateStatus derives the pod's status from its containers and writes it
// if it changed.
func (a *Agent) updateStatus(ps *podSync, byName map[string][]rt.Container) error {
	pod := ps.pod
	now := a.cfg.Now()
	st := pod.Status.DeepCopy()
	st.HostIP = a.cfg.NodeIP
	if a.cfg.NodeIP != "" {
		st.HostIPs = []corev1.HostIP{{IP: a.cfg.NodeIP}}
	}
	if st.StartTime == nil {
		t := metav1.NewTime(now.Truncate(time.Second))
		st.StartTime = &t
	}
	if ps.sandbox != nil && ps.sandbox.IP != "" {
		st.PodIP, st.PodIPs = ps.sandbox.IP, []corev1.PodIP{{IP: ps.sandbox.IP}}
	}

	// Init containers: done when each has exited 0; failed for good when
	// one failed under restartPolicy Never.
	initPolicy := corev1.RestartPolicyOnFailure
	if pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
		initPolicy = corev1.RestartPolicyNever
	}
	st.InitContainerStatuses = nil
	initialized, initFailed := true, false
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs := a.containerStatus(ps, c, byName[c.Name], initPolicy)
		if t := cs.State.Terminated; t == nil || t.ExitCode != 0 {
			initialized = false
			initFailed = initFailed || (t != nil && t.ExitCode != 0)
		}
		if cs.State.Running != nil {
			cs.Ready = false // an init container is never ready
		}
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
	}

	st.ContainerStatuses = nil
	running, waiting, failed, restarting, ready := 0, 0, 0, 0, 0
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cs := a.containerStatus(ps, c, byName[c.Name], pod.Spec.RestartPolicy)
		if !initialized && len(byName[c.Name]) == 0 {
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
		}
		switch {
		case cs.State.Running != nil:
			running++
			if cs.Ready {
				ready++
			}
			if ps.sandbox == nil && st.PodIP == "" {
				if latest := byName[c.Name][len(byName[c.Name])-1]; latest.IP != "" {
					st.PodIP, st.PodIPs = latest.IP, []corev1.PodIP{{IP: latest.IP}}
				}
			}
		case cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff":
			restarting++
		case cs.State.Waiting != nil:
			waiting++
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode != 0:
			failed++
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	n := len(pod.Spec.Containers)
	switch {
	case initFailed && pod.Spec.RestartPolicy == corev1.RestartPolicyNever:
		st.Phase = corev1.PodFailed
	case !initialized:
		st.Phase = corev1.PodPending
	case running > 0 || restarting > 0:
		st.Phase = corev1.PodRunning
	case waiting > 0:
		st.Phase = corev1.PodPending
	case failed > 0:
		st.Phase = corev1.PodFailed
	default:
		st.Phase = corev1.PodSucceeded
	}
	allReady := initialized && ready == n
	st.Conditions = mergeConditions(pod.Status.Conditions, now,
		condition(corev1.PodScheduled, true),
		condition(corev1.PodInitialized, initialized),
		condition(corev1.ContainersReady, allReady),
		condition(corev1.PodReady, allReady),
	)
	if equality.Semantic.DeepEqual(st, &pod.Status) {
		return nil
	}
	next := pod.DeepCopy()
	next.Status = *st
	return a.cfg.Client.UpdateStatus(ps.ctx, next)
}

func condition(t corev1.PodConditionType, ok bool) corev1.PodCondition {
	s := corev1.ConditionFalse
	if ok {
		s = corev1.ConditionTrue
	}
	return corev1.PodCondition{Type: t, Status: s}
}

// mergeConditions keeps each condition's lastTransitionTime while its
// status is unchanged.
func mergeConditions(old []corev1.PodCondition, now time.Time, conds ...corev1.PodCondition) []corev1.PodCondition {
	for i := range conds {
		conds[i].LastTransitionTime = metav1.NewTime(now.Truncate(time.Second))
		for _, o := range old {
			if o.Type == conds[i].Type && o.Status == conds[i].Status {
				conds[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	return conds
}

func ptr[T any](v T) *T { return &v }

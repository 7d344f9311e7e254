package agent

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// waitState is why a container that should run has no running container
// yet (image missing, bad config), with the backoff before the next try.
type waitState struct {
	reason, message string
	failures        int
	next            time.Time
}

func waitKey(pod *corev1.Pod, container string) string { return string(pod.UID) + "/" + container }

// backoff is the delay before the n-th retry (n >= 1).
func (a *Agent) backoff(n int) time.Duration {
	d := a.cfg.BackoffBase
	for i := 1; i < n && d < a.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, a.cfg.BackoffMax)
}

func shouldRestart(policy corev1.RestartPolicy, exitCode int32) bool {
	switch policy {
	case corev1.RestartPolicyAlways:
		return true
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	}
	return false
}

// restartAt is when an exited container's next attempt may start.
func (a *Agent) restartAt(c rt.Container) time.Time {
	n := attemptOf(c) + 1
	if !c.StartedAt.IsZero() && c.FinishedAt.Sub(c.StartedAt) >= 10*time.Minute {
		n = 1 // it ran long enough: the backoff starts over, as in Kubernetes
	}
	return c.FinishedAt.Add(a.backoff(n))
}

func (a *Agent) syncContainer(ctx context.Context, pod *corev1.Pod, spec *corev1.Container, tries []rt.Container) error {
	if len(tries) == 0 {
		return a.startAttempt(ctx, pod, spec, 0, nil)
	}
	latest := tries[len(tries)-1]
	switch latest.State {
	case rt.StateCreated:
		return a.cfg.Runtime.Start(ctx, latest.ID)
	case rt.StateExited:
		if !shouldRestart(pod.Spec.RestartPolicy, latest.ExitCode) {
			return nil
		}
		if a.cfg.Now().Before(a.restartAt(latest)) {
			return nil
		}
		a.event(ctx, pod, corev1.EventTypeWarning, "BackOff", fmt.Sprintf("Back-off restarting failed container %s in pod %s", spec.Name, pod.Name))
		return a.startAttempt(ctx, pod, spec, attemptOf(latest)+1, tries[:len(tries)-1])
	}
	return nil
}

// startAttempt creates and starts attempt n of a container, then removes
// stale attempts (the one before n is kept for `kubectl logs --previous`).
func (a *Agent) startAttempt(ctx context.Context, pod *corev1.Pod, c *corev1.Container, n int, older []rt.Container) error {
	key := waitKey(pod, c.Name)
	a.mu.Lock()
	ws, waiting := a.waits[key]
	a.mu.Unlock()
	if waiting && a.cfg.Now().Before(ws.next) {
		return nil
	}
	fail := func(reason, msg string) error {
		a.mu.Lock()
		ws := a.waits[key]
		ws.failures++
		ws.reason, ws.message = reason, msg
		ws.next = a.cfg.Now().Add(a.backoff(ws.failures))
		a.waits[key] = ws
		a.mu.Unlock()
		a.event(ctx, pod, corev1.EventTypeWarning, "Failed", msg)
		return nil
	}
	pull := c.ImagePullPolicy != corev1.PullNever
	if err := a.cfg.Runtime.EnsureImage(ctx, c.Image, pull); err != nil {
		switch {
		case errors.Is(err, rt.ErrImageNotFound) && !pull:
			return fail("ErrImageNeverPull", fmt.Sprintf("Container image %q is not present with pull policy of Never: build or load it on this node (podman build / podman load)", c.Image))
		case errors.Is(err, rt.ErrImageNotFound):
			return fail("ImagePullBackOff", fmt.Sprintf("Failed to pull image %q: %v", c.Image, err))
		}
		return err
	}
	spec, err := a.containerSpec(ctx, pod, c, n)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return fail("CreateContainerConfigError", err.Error())
	}
	id, err := a.cfg.Runtime.Create(ctx, spec)
	if err != nil {
		if errors.Is(err, rt.ErrUnavailable) {
			return err
		}
		return fail("CreateContainerError", err.Error())
	}
	a.mu.Lock()
	delete(a.waits, key)
	a.mu.Unlock()
	if err := a.cfg.Runtime.Start(ctx, id); err != nil {
		a.event(ctx, pod, corev1.EventTypeWarning, "Failed", fmt.Sprintf("Error: failed to start container %s: %v", c.Name, err))
		return err
	}
	a.event(ctx, pod, corev1.EventTypeNormal, "Started", fmt.Sprintf("Started container %s", c.Name))
	for i, old := range older {
		if i < len(older)-1 || attemptOf(old) < n-1 {
			if err := a.cfg.Runtime.Remove(ctx, old.ID); err != nil {
				a.log.Warn("remove old attempt", "container", old.Name, "err", err)
			}
		}
	}
	return nil
}

// ContainerName is the Podman name of attempt n of a pod's container:
// readable in `podman ps`, unique per pod UID and attempt.
func ContainerName(pod *corev1.Pod, container string, n int) string {
	uid := strings.ReplaceAll(string(pod.UID), "-", "")
	if len(uid) > 8 {
		uid = uid[:8]
	}
	return fmt.Sprintf("%s_%s_%s_%s_%d", pod.Namespace, pod.Name, container, uid, n)
}

func (a *Agent) containerSpec(ctx context.Context, pod *corev1.Pod, c *corev1.Container, n int) (rt.Spec, error) {
	env, err := a.env(a.sources(ctx, pod), c)
	if err != nil {
		return rt.Spec{}, err
	}
	mounts, err := a.mounts(pod, c, env)
	if err != nil {
		return rt.Spec{}, err
	}
	s := rt.Spec{
		Name:       ContainerName(pod, c.Name, n),
		Image:      c.Image,
		Command:    c.Command,
		Args:       c.Args,
		WorkingDir: c.WorkingDir,
		Env:        env,
		Mounts:     mounts,
		Labels: map[string]string{
			rt.LabelNamespace:   pod.Namespace,
			rt.LabelPod:         pod.Name,
			rt.LabelPodUID:      string(pod.UID),
			rt.LabelNode:        a.cfg.NodeName,
			rt.LabelTrustDomain: a.cfg.TrustDomain,
			rt.LabelPeerID:      a.cfg.PeerID,
			rt.LabelContainer:   c.Name,
			rt.LabelAttempt:     strconv.Itoa(n),
		},
	}
	s.Command, s.Args = expandAll(c.Command, env), expandAll(c.Args, env)
	for _, p := range c.Ports {
		if p.HostPort == 0 {
			continue // as in Kubernetes, containerPort alone publishes nothing on the host
		}
		s.Ports = append(s.Ports, rt.Port{ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIP: p.HostIP, Protocol: strings.ToLower(string(p.Protocol))})
	}
	if q, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
		s.MilliCPU = q.MilliValue()
	}
	if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
		s.MemoryBytes = q.Value()
	}
	return s, nil
}

// expandAll expands $(VAR) references in a command or its arguments.
func expandAll(args []string, env map[string]string) []string {
	if args == nil {
		return nil
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, env)
	}
	return out
}

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

// updateStatus derives the pod's status from its containers and writes it
// if it changed.
func (a *Agent) updateStatus(ctx context.Context, pod *corev1.Pod, byName map[string][]rt.Container) error {
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
	st.ContainerStatuses = nil
	running, waiting, failed, restarting := 0, 0, 0, 0
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		tries := byName[c.Name]
		cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, Started: ptr(false)}
		if len(tries) == 0 {
			a.mu.Lock()
			ws, ok := a.waits[waitKey(pod, c.Name)]
			a.mu.Unlock()
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
			if ok {
				cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: ws.reason, Message: ws.message}
			}
			waiting++
			st.ContainerStatuses = append(st.ContainerStatuses, cs)
			continue
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
			cs.Ready, cs.Started = true, ptr(true)
			running++
			if latest.IP != "" && st.PodIP == "" {
				st.PodIP = latest.IP
				st.PodIPs = []corev1.PodIP{{IP: latest.IP}}
			}
		case rt.StateExited:
			term := terminated(latest)
			if shouldRestart(pod.Spec.RestartPolicy, latest.ExitCode) {
				cs.LastTerminationState = corev1.ContainerState{Terminated: term}
				cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
					Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", a.backoff(attemptOf(latest)+1), c.Name, pod.Name)}
				restarting++
			} else {
				cs.State.Terminated = term
				if latest.ExitCode != 0 {
					failed++
				}
			}
		default:
			cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}
			waiting++
		}
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	n := len(pod.Spec.Containers)
	switch {
	case running > 0 || restarting > 0:
		st.Phase = corev1.PodRunning
	case waiting > 0:
		st.Phase = corev1.PodPending
	case failed > 0:
		st.Phase = corev1.PodFailed
	default:
		st.Phase = corev1.PodSucceeded
	}
	ready := running == n
	st.Conditions = mergeConditions(pod.Status.Conditions, now,
		condition(corev1.PodScheduled, true),
		condition(corev1.PodInitialized, true),
		condition(corev1.ContainersReady, ready),
		condition(corev1.PodReady, ready),
	)
	if equality.Semantic.DeepEqual(st, &pod.Status) {
		return nil
	}
	next := pod.DeepCopy()
	next.Status = *st
	return a.cfg.Client.UpdateStatus(ctx, next)
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

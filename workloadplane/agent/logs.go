package agent

import (
	"context"
	"fmt"
	"io"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// StreamLogs writes the logs of a container of pod to w: the latest
// attempt, or the one before with opts.Previous; until they end or, with
// opts.Follow, until ctx is done. A pod on another node is asked of that
// node's agent (Config.Peers). It returns an API error (400 for an unknown
// container) before writing anything if it cannot start.
func (a *Agent) StreamLogs(ctx context.Context, pod *corev1.Pod, opts *corev1.PodLogOptions, w io.Writer) error {
	switch {
	case pod.Spec.NodeName == "":
		return apierrors.NewBadRequest(fmt.Sprintf("pod %s has not been placed on a node yet: it has no logs", pod.Name))
	case pod.Spec.NodeName != a.cfg.NodeName && a.cfg.Peers == nil:
		return apierrors.NewBadRequest(fmt.Sprintf("pod %s is not on this node (it is on %q); ask that node's API", pod.Name, pod.Spec.NodeName))
	case pod.Spec.NodeName != a.cfg.NodeName:
		return a.streamRemote(ctx, pod, opts, w)
	}
	return a.streamLocal(ctx, pod, opts, w)
}

// streamLocal streams the logs of a pod on this node.
func (a *Agent) streamLocal(ctx context.Context, pod *corev1.Pod, opts *corev1.PodLogOptions, w io.Writer) error {
	container := opts.Container
	if container == "" {
		if len(pod.Spec.Containers) != 1 {
			var names []string
			for _, c := range pod.Spec.Containers {
				names = append(names, c.Name)
			}
			return apierrors.NewBadRequest(fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, names))
		}
		container = pod.Spec.Containers[0].Name
	}
	ctrs, err := a.cfg.Runtime.List(ctx, map[string]string{rt.LabelPodUID: string(pod.UID), rt.LabelContainer: container})
	if err != nil {
		return apierrors.NewServiceUnavailable(err.Error())
	}
	sort.Slice(ctrs, func(i, j int) bool { return attemptOf(ctrs[i]) < attemptOf(ctrs[j]) })
	idx := len(ctrs) - 1
	if opts.Previous {
		idx--
	}
	if idx < 0 {
		what := "container"
		if opts.Previous {
			what = "previous terminated container"
		}
		return apierrors.NewBadRequest(fmt.Sprintf("%s %q in pod %q not found", what, container, pod.Name))
	}
	lo := rt.LogOptions{Follow: opts.Follow && !opts.Previous, Timestamps: opts.Timestamps, TailLines: opts.TailLines}
	if opts.SinceTime != nil {
		lo.Since = opts.SinceTime.Time
	} else if opts.SinceSeconds != nil {
		lo.Since = a.cfg.Now().Add(-time.Duration(*opts.SinceSeconds) * time.Second)
	}
	return a.cfg.Runtime.Logs(ctx, ctrs[idx].ID, lo, w)
}

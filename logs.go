package mycel

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/mycelfabric/mycel/kubeapi"
	"github.com/mycelfabric/mycel/workloadplane/objects"
	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// logStreamer serves pods/log from this node's runtime.
type logStreamer struct {
	runtime rt.Runtime
	node    string
}

func (l *logStreamer) StreamLogs(ctx context.Context, obj objects.Object, container string, opts kubeapi.LogOptions, w io.Writer) error {
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName != l.node {
		return apierrors.NewBadRequest(fmt.Sprintf("pod %s is not on this node (it is on %q); ask that node's API", pod.Name, pod.Spec.NodeName))
	}
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
	ctrs, err := l.runtime.List(ctx, map[string]string{rt.LabelPodUID: string(pod.UID), rt.LabelContainer: container})
	if err != nil {
		return apierrors.NewServiceUnavailable(err.Error())
	}
	sort.Slice(ctrs, func(i, j int) bool {
		a, _ := strconv.Atoi(ctrs[i].Labels[rt.LabelAttempt])
		b, _ := strconv.Atoi(ctrs[j].Labels[rt.LabelAttempt])
		return a < b
	})
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
		lo.Since = *opts.SinceTime
	}
	return l.runtime.Logs(ctx, ctrs[idx].ID, lo, w)
}

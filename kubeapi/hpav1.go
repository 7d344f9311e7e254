package kubeapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HorizontalPodAutoscalers are served as autoscaling/v2. kubectl 1.32's
// `kubectl autoscale` creates them as autoscaling/v1 with its typed
// client, so a v1 create is converted to v2, served as a v2 create, and
// answered in v1. Every other v1 request is 404 with where to go instead.
const hpaV1Prefix = "/apis/autoscaling/v1/"

func isHPAv1(path string) bool {
	return strings.HasPrefix(path, hpaV1Prefix) && strings.Contains(path, "/horizontalpodautoscalers")
}

func (s *Server) serveHPAv1(w http.ResponseWriter, r *http.Request, path string) error {
	segs := strings.Split(strings.TrimPrefix(path, hpaV1Prefix), "/")
	if r.Method != http.MethodPost || len(segs) != 3 || segs[0] != "namespaces" || segs[2] != "horizontalpodautoscalers" {
		return &apierrors.StatusError{ErrStatus: metav1.Status{
			Status: metav1.StatusFailure, Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound,
			Message: "autoscaling/v1 HorizontalPodAutoscalers are accepted only for creation (kubectl autoscale); this server serves them as autoscaling/v2: use `kubectl get|edit|delete hpa`, or a manifest of apiVersion autoscaling/v2",
		}}
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	gvk := autoscalingv1.SchemeGroupVersion.WithKind("HorizontalPodAutoscaler")
	got, err := s.decode(w, r, body, r.Header.Get("Content-Type"), &autoscalingv1.HorizontalPodAutoscaler{}, gvk)
	if err != nil {
		return err
	}
	v2body, err := json.Marshal(hpaToV2(got.(*autoscalingv1.HorizontalPodAutoscaler)))
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	inner := r.Clone(r.Context())
	inner.URL.Path = "/apis/autoscaling/v2/" + strings.Join(segs, "/")
	inner.Body, inner.ContentLength = readCloser{bytes.NewReader(v2body)}, int64(len(v2body))
	inner.Header.Set("Content-Type", "application/json")
	inner.Header.Set("Accept", "application/json")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, inner)
	for k, vs := range rec.Header() {
		if k != "Content-Length" {
			w.Header()[k] = vs
		}
	}
	out := rec.Body.Bytes()
	if rec.Code < 300 {
		var created autoscalingv2.HorizontalPodAutoscaler
		if err := json.Unmarshal(out, &created); err != nil {
			return apierrors.NewInternalError(err)
		}
		if out, err = json.Marshal(hpaToV1(&created)); err != nil {
			return apierrors.NewInternalError(err)
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(rec.Code)
	w.Write(out)
	return nil
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// hpaToV2 converts as Kubernetes does: the CPU target becomes the one
// Resource metric (none leaves v2's default of 80%).
func hpaToV2(in *autoscalingv1.HorizontalPodAutoscaler) *autoscalingv2.HorizontalPodAutoscaler {
	out := &autoscalingv2.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{Kind: "HorizontalPodAutoscaler", APIVersion: autoscalingv2.SchemeGroupVersion.String()},
		ObjectMeta: in.ObjectMeta,
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{Kind: in.Spec.ScaleTargetRef.Kind, Name: in.Spec.ScaleTargetRef.Name, APIVersion: in.Spec.ScaleTargetRef.APIVersion},
			MinReplicas:    in.Spec.MinReplicas, MaxReplicas: in.Spec.MaxReplicas,
		},
	}
	if p := in.Spec.TargetCPUUtilizationPercentage; p != nil {
		out.Spec.Metrics = []autoscalingv2.MetricSpec{{Type: autoscalingv2.ResourceMetricSourceType, Resource: &autoscalingv2.ResourceMetricSource{
			Name: corev1.ResourceCPU, Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: p},
		}}}
	}
	return out
}

// hpaToV1 is the v1 view of a v2 autoscaler: its CPU utilization target
// and current value; other metrics have no v1 field.
func hpaToV1(in *autoscalingv2.HorizontalPodAutoscaler) *autoscalingv1.HorizontalPodAutoscaler {
	out := &autoscalingv1.HorizontalPodAutoscaler{
		TypeMeta:   metav1.TypeMeta{Kind: "HorizontalPodAutoscaler", APIVersion: autoscalingv1.SchemeGroupVersion.String()},
		ObjectMeta: in.ObjectMeta,
		Spec: autoscalingv1.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv1.CrossVersionObjectReference{Kind: in.Spec.ScaleTargetRef.Kind, Name: in.Spec.ScaleTargetRef.Name, APIVersion: in.Spec.ScaleTargetRef.APIVersion},
			MinReplicas:    in.Spec.MinReplicas, MaxReplicas: in.Spec.MaxReplicas,
		},
		Status: autoscalingv1.HorizontalPodAutoscalerStatus{
			ObservedGeneration: in.Status.ObservedGeneration, LastScaleTime: in.Status.LastScaleTime,
			CurrentReplicas: in.Status.CurrentReplicas, DesiredReplicas: in.Status.DesiredReplicas,
		},
	}
	out.ManagedFields = nil // they describe v2 fields
	for _, m := range in.Spec.Metrics {
		if m.Resource != nil && m.Resource.Name == corev1.ResourceCPU && m.Resource.Target.AverageUtilization != nil {
			out.Spec.TargetCPUUtilizationPercentage = m.Resource.Target.AverageUtilization
		}
	}
	for _, m := range in.Status.CurrentMetrics {
		if m.Resource != nil && m.Resource.Name == corev1.ResourceCPU {
			out.Status.CurrentCPUUtilizationPercentage = m.Resource.Current.AverageUtilization
		}
	}
	return out
}

package agent

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// configMap returns the named ConfigMap, nil if it does not exist.
func (s *podSync) configMap(name string) (*corev1.ConfigMap, error) {
	if cm, ok := s.configMaps[name]; ok {
		return cm, nil
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: s.pod.Namespace, Name: name}}
	if err := s.a.cfg.Client.Get(s.ctx, cm); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
		cm = nil
	}
	s.configMaps[name] = cm
	return cm, nil
}

// secret returns the named Secret, nil if it does not exist.
func (s *podSync) secret(name string) (*corev1.Secret, error) {
	if sec, ok := s.secrets[name]; ok {
		return sec, nil
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.pod.Namespace, Name: name}}
	if err := s.a.cfg.Client.Get(s.ctx, sec); err != nil {
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
		sec = nil
	}
	s.secrets[name] = sec
	return sec, nil
}

// configMapData is a ConfigMap's data and binaryData as bytes, nil if the
// ConfigMap does not exist.
func (s *podSync) configMapData(name string) (map[string][]byte, error) {
	cm, err := s.configMap(name)
	if err != nil || cm == nil {
		return nil, err
	}
	out := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		out[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		out[k] = v
	}
	return out, nil
}

// secretData is a Secret's data, nil if the Secret does not exist.
func (s *podSync) secretData(name string) (map[string][]byte, error) {
	sec, err := s.secret(name)
	if err != nil || sec == nil {
		return nil, err
	}
	if sec.Data == nil {
		return map[string][]byte{}, nil
	}
	return sec.Data, nil
}

// keyRef resolves one key of a ConfigMap ("ConfigMap") or Secret, with
// kubelet's messages. ok is false for a missing optional reference.
func (s *podSync) keyRef(kind, name, key string, optional *bool) (value string, ok bool, err error) {
	var data map[string][]byte
	if kind == "ConfigMap" {
		data, err = s.configMapData(name)
	} else {
		data, err = s.secretData(name)
	}
	if err != nil {
		return "", false, err
	}
	opt := optional != nil && *optional
	if data == nil {
		if opt {
			return "", false, nil
		}
		return "", false, fmt.Errorf("%s %q not found", strings.ToLower(kind), name)
	}
	v, found := data[key]
	if !found {
		if opt {
			return "", false, nil
		}
		return "", false, fmt.Errorf("couldn't find key %s in %s %s/%s", key, kind, s.pod.Namespace, name)
	}
	return string(v), true, nil
}

// env builds a container's environment as kubelet does: envFrom first (in
// order, keys that are not valid variable names skipped), then env, which
// overrides it, with $(VAR) references to variables defined before
// expanded.
func (a *Agent) env(src *podSync, c *corev1.Container) (map[string]string, error) {
	out := map[string]string{}
	var skipped []string
	for _, from := range c.EnvFrom {
		var data map[string][]byte
		var err error
		switch {
		case from.ConfigMapRef != nil:
			if data, err = src.configMapData(from.ConfigMapRef.Name); err == nil && data == nil && !isTrue(from.ConfigMapRef.Optional) {
				err = fmt.Errorf("configmap %q not found", from.ConfigMapRef.Name)
			}
		case from.SecretRef != nil:
			if data, err = src.secretData(from.SecretRef.Name); err == nil && data == nil && !isTrue(from.SecretRef.Optional) {
				err = fmt.Errorf("secret %q not found", from.SecretRef.Name)
			}
		}
		if err != nil {
			return nil, err
		}
		for k, v := range data {
			name := from.Prefix + k
			if len(validation.IsEnvVarName(name)) > 0 {
				skipped = append(skipped, name)
				continue
			}
			out[name] = string(v)
		}
	}
	if len(skipped) > 0 {
		a.event(src.ctx, src.pod, corev1.EventTypeWarning, "InvalidEnvironmentVariableNames",
			fmt.Sprintf("Keys [%s] from the EnvFrom of container %s are not valid environment variable names and were skipped", strings.Join(skipped, ", "), c.Name))
	}
	for _, e := range c.Env {
		var v string
		switch from := e.ValueFrom; {
		case from == nil:
			v = expand(e.Value, out)
		case from.FieldRef != nil:
			var err error
			if v, err = src.fieldRef(from.FieldRef.FieldPath); err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		case from.ResourceFieldRef != nil:
			var err error
			if v, err = a.resourceFieldRef(src.ctx, c, from.ResourceFieldRef); err != nil {
				return nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		case from.ConfigMapKeyRef != nil, from.SecretKeyRef != nil:
			kind, ref := "ConfigMap", from.ConfigMapKeyRef
			if from.SecretKeyRef != nil {
				kind, ref = "Secret", &corev1.ConfigMapKeySelector{LocalObjectReference: from.SecretKeyRef.LocalObjectReference, Key: from.SecretKeyRef.Key, Optional: from.SecretKeyRef.Optional}
			}
			got, ok, err := src.keyRef(kind, ref.Name, ref.Key, ref.Optional)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			v = got
		default:
			return nil, fmt.Errorf("env %s: valueFrom names no source", e.Name)
		}
		out[e.Name] = v
	}
	return out, nil
}

func isTrue(b *bool) bool { return b != nil && *b }

// expand replaces $(VAR) with VAR's value from env, as Kubernetes does:
// $$ escapes a $, and a reference to an undefined variable stays as it is.
func expand(s string, env map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := env[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// fieldRef resolves a downward API field of the pod (env and volumes).
func (s *podSync) fieldRef(path string) (string, error) {
	pod := s.pod
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		return s.a.cfg.NodeIP, nil
	case "status.podIP", "status.podIPs":
		if s.sandbox != nil {
			return s.sandbox.IP, nil
		}
	}
	for _, m := range []struct {
		prefix string
		values map[string]string
	}{{"metadata.labels['", pod.Labels}, {"metadata.annotations['", pod.Annotations}} {
		if key, ok := strings.CutPrefix(path, m.prefix); ok && strings.HasSuffix(key, "']") {
			return m.values[strings.TrimSuffix(key, "']")], nil
		}
	}
	return "", fmt.Errorf("fieldRef %q is not supported on this node (status.podIP needs a runtime with pod sandboxes)", path)
}

// formatMap renders labels or annotations as the downward API does:
// key="value" lines, sorted.
func formatMap(m map[string]string) string {
	lines := make([]string, 0, len(m))
	for k, v := range m {
		lines = append(lines, fmt.Sprintf("%s=%q", k, v))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// resourceFieldRef resolves a container's limit or request in units of the
// divisor, rounded up; an unset limit is the node's allocatable, as kubelet
// does.
func (a *Agent) resourceFieldRef(ctx context.Context, c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("resourceFieldRef %q is not supported", ref.Resource)
	}
	list := c.Resources.Limits
	if kind == "requests" {
		list = c.Resources.Requests
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok && kind == "limits" {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName}}
		if err := a.cfg.Client.Get(ctx, node); err != nil {
			return "", err
		}
		q, ok = node.Status.Allocatable[corev1.ResourceName(name)]
	}
	if !ok {
		return "0", nil
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	if name == string(corev1.ResourceCPU) {
		return fmt.Sprint(int64(math.Ceil(float64(q.MilliValue()) / float64(divisor.MilliValue())))), nil
	}
	return fmt.Sprint(int64(math.Ceil(float64(q.Value()) / float64(divisor.Value())))), nil
}

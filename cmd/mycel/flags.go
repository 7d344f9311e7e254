package main

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// parseCapacity parses "cpu=2,memory=4Gi,pods=50".
func parseCapacity(s string) (corev1.ResourceList, error) {
	kv, err := parseLabels(s)
	if err != nil {
		return nil, fmt.Errorf("capacity: %w", err)
	}
	out := corev1.ResourceList{}
	for k, v := range kv {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("capacity %s=%q: %w (e.g. cpu=2,memory=4Gi,pods=50)", k, v, err)
		}
		out[corev1.ResourceName(k)] = q
	}
	return out, nil
}

// parseLabels parses "k=v,k2=v2".
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		out[k] = v
	}
	return out, nil
}

package mycel

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" means valid
	}{
		{"defaults", Config{DataDir: "d", CADir: "c", Name: "node-1"}, ""},
		{"no data dir", Config{CADir: "c", Name: "n"}, "--data-dir"},
		{"CA and token", Config{DataDir: "d", Name: "n", CADir: "c", Join: "mycel1.x"}, "exclude each other"},
		{"bad name", Config{DataDir: "d", CADir: "c", Name: "Node_1"}, "--name"},
		{"bad address", Config{DataDir: "d", CADir: "c", Name: "n", APIAddr: "nope"}, "HOST:PORT"},
		{"bad label", Config{DataDir: "d", CADir: "c", Name: "n", Labels: map[string]string{"a b": "c"}}, "label key"},
		{"sim runtime named", Config{DataDir: "d", CADir: "c", Name: "n", RuntimeName: "sim"}, ""},
		{"unknown runtime", Config{DataDir: "d", CADir: "c", Name: "n", RuntimeName: "docker"}, `want "podman" or "sim"`},
		{"wan failure detection", Config{DataDir: "d", CADir: "c", Name: "n", FailureDetection: "wan"}, ""},
		{"unknown failure detection", Config{DataDir: "d", CADir: "c", Name: "n", FailureDetection: "fast"}, "want lan, wan or local"},
		{"capacity", Config{DataDir: "d", CADir: "c", Name: "n", Capacity: mustCapacity(t, "cpu=2,memory=1Gi")}, ""},
		{"capacity of a GPU", Config{DataDir: "d", CADir: "c", Name: "n", Capacity: mustCapacity(t, "nvidia.com/gpu=1")}, "only cpu, memory and pods"},
		{"zero capacity", Config{DataDir: "d", CADir: "c", Name: "n", Capacity: mustCapacity(t, "memory=0")}, "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
			if tt.want == "" && (tt.cfg.APIAddr != "127.0.0.1:6443" || tt.cfg.HeartbeatInterval == 0 || tt.cfg.Logger == nil || tt.cfg.RuntimeName == "") {
				t.Fatalf("defaults not filled: %+v", tt.cfg)
			}
		})
	}
}

func mustCapacity(t *testing.T, s string) corev1.ResourceList {
	c := corev1.ResourceList{}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		q, err := resource.ParseQuantity(v)
		if err != nil {
			t.Fatal(err)
		}
		c[corev1.ResourceName(k)] = q
	}
	return c
}

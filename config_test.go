package mycel

import (
	"strings"
	"testing"
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
			if tt.want == "" && (tt.cfg.APIAddr != "127.0.0.1:6443" || tt.cfg.HeartbeatInterval == 0 || tt.cfg.Logger == nil) {
				t.Fatalf("defaults not filled: %+v", tt.cfg)
			}
		})
	}
}

func FuzzParseLabels(f *testing.F) {
	f.Add("zone=a,tier=edge")
	f.Add("=,,=x")
	f.Fuzz(func(t *testing.T, s string) {
		labels, err := ParseLabels(s)
		if err == nil {
			for k := range labels {
				if k == "" {
					t.Fatalf("empty key from %q", s)
				}
			}
		}
	})
}

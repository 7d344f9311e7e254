package main

import (
	"strings"
	"testing"
)

func TestParseCapacityRejectsNonsense(t *testing.T) {
	if _, err := parseCapacity("memory=lots"); err == nil || !strings.Contains(err.Error(), "memory=4Gi") {
		t.Fatalf("got %v, want an error with an example", err)
	}
}

func FuzzParseLabels(f *testing.F) {
	f.Add("zone=a,tier=edge")
	f.Add("=,,=x")
	f.Fuzz(func(t *testing.T, s string) {
		labels, err := parseLabels(s)
		if err == nil {
			for k := range labels {
				if k == "" {
					t.Fatalf("empty key from %q", s)
				}
			}
		}
	})
}

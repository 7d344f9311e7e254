package kubeapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"k8s.io/apiserver/pkg/server/healthz"

	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/workloadplane/objects"
	"github.com/mycelfabric/mycel/workloadplane/store"
)

// TestReadyzReportsItsChecks: /readyz answers 200 only while every check
// passes, and says which failed (kube-apiserver's format, ?verbose and
// /readyz/NAME); /livez and /healthz do not depend on them; none needs a
// client certificate.
func TestReadyzReportsItsChecks(t *testing.T) {
	authority, err := ca.Init(filepath.Join(t.TempDir(), "ca"), "test.example")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{Node: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var settled atomic.Bool
	srv, err := NewServer(Config{Objects: objects.New(st, objects.Config{}), Bundle: authority.Bundle(),
		ReadyChecks: []healthz.HealthChecker{healthz.NamedCheck("settled", func(*http.Request) error {
			if !settled.Load() {
				return errors.New("not settled yet")
			}
			return nil
		})}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	get := func(path string) (int, string) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, ts.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/readyz?verbose"); code != http.StatusInternalServerError || !strings.Contains(body, "[-]settled failed") || !strings.Contains(body, "[+]ping ok") {
		t.Fatalf("/readyz while not settled: %d %q", code, body)
	}
	if code, _ := get("/readyz/settled"); code != http.StatusInternalServerError {
		t.Fatalf("/readyz/settled while not settled: %d", code)
	}
	for _, p := range []string{"/livez", "/healthz"} {
		if code, body := get(p); code != http.StatusOK || body != "ok" {
			t.Fatalf("%s: %d %q", p, code, body)
		}
	}
	settled.Store(true)
	if code, body := get("/readyz"); code != http.StatusOK || body != "ok" {
		t.Fatalf("/readyz once settled: %d %q", code, body)
	}
}

package e2e

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/mycelfabric/mycel/securityplane/ca"
)

func TestPrivilegedPodDenied(t *testing.T) {
	n := startNode(t)
	out, err := n.kubectlIn(`apiVersion: v1
kind: Pod
metadata: {name: priv}
spec:
  containers:
  - name: c
    image: `+demoImage+`
    securityContext: {privileged: true}
`, "apply", "-f", "-")
	if err == nil || !strings.Contains(out, "Forbidden") || !strings.Contains(out, "no-privileged-containers") {
		t.Fatalf("privileged pod: err %v, output %q; want Forbidden naming the rule", err, out)
	}
	if _, err := n.kubectlErr("get", "pod", "priv"); err == nil {
		t.Fatal("denied pod was stored")
	}
}

func TestUnauthenticatedRequestsGet401(t *testing.T) {
	n := startNode(t)
	// Without a client certificate.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	for _, path := range []string{"/api/v1/pods", "/version", "/apis"} {
		resp, err := client.Get("https://" + n.apiAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var st struct{ Kind, Reason string }
		json.Unmarshal(body, &st)
		if resp.StatusCode != 401 || st.Kind != "Status" || st.Reason != "Unauthorized" {
			t.Errorf("%s: %d %s, want 401 Status Unauthorized", path, resp.StatusCode, body)
		}
	}
	// With a certificate from another trust domain's CA.
	other := startNodeCAOnly(t)
	out, err := n.kubectlErr("--kubeconfig", other, "--server", "https://"+n.apiAddr, "--insecure-skip-tls-verify", "get", "pods")
	// kubectl's wording for a 401.
	if err == nil || !strings.Contains(out, "You must be logged in to the server") || !strings.Contains(out, "not a valid SVID of trust domain e2e.test") {
		t.Fatalf("foreign certificate: %v %q, want a 401", err, out)
	}
}

// startNodeCAOnly makes another trust domain and a kubeconfig for it.
func startNodeCAOnly(t *testing.T) string {
	dir := t.TempDir()
	run(t, mycelBin, "ca", "init", "--trust-domain", "e2e.test", "--dir", filepath.Join(dir, "ca"))
	kc := filepath.Join(dir, "kubeconfig")
	run(t, mycelBin, "kubeconfig", "--dir", filepath.Join(dir, "ca"), "--user", "mallory", "--server", "https://127.0.0.1:1", "--out", kc)
	return kc
}

func TestNodeSVID(t *testing.T) {
	n := startNode(t)
	certPEM, err := os.ReadFile(filepath.Join(n.dataDir, "svid.pem"))
	if err != nil {
		t.Fatal(err)
	}
	bundle, err := x509bundle.Load(spiffeid.RequireTrustDomainFromString("e2e.test"), filepath.Join(n.caDir, "bundle.pem"))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := ca.ParseCerts(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	var raw [][]byte
	for _, c := range certs {
		raw = append(raw, c.Raw)
	}
	id, _, err := x509svid.ParseAndVerify(raw, bundle)
	if err != nil {
		t.Fatalf("go-spiffe rejects the node SVID: %v", err)
	}
	peer := strings.TrimSpace(n.kubectl("get", "node", n.name, "-o", "jsonpath={.metadata.labels.mycel\\.io/peer-id}"))
	if want := "spiffe://e2e.test/node/" + peer; id.String() != want {
		t.Fatalf("SVID names %s, want %s", id, want)
	}
}

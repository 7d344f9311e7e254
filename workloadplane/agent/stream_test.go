package agent

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
	utilexec "k8s.io/utils/exec"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
	"github.com/mycelfabric/mycel/workloadplane/runtime/runtimetest"
)

// dialingFake is the fake runtime with a pod network: port 8080 of every
// sandbox is an HTTP server, every other port refuses.
type dialingFake struct {
	*runtimetest.Fake
	web *httptest.Server
}

func (d dialingFake) DialPort(ctx context.Context, _ string, port int32) (net.Conn, error) {
	if port != 8080 {
		return nil, fmt.Errorf("dial tcp4 127.0.0.1:%d: connect: connection refused", port)
	}
	var dl net.Dialer
	return dl.DialContext(ctx, "tcp", d.web.Listener.Addr().String())
}

// streamHarness runs a pod on the fake runtime and serves the agent's
// streaming server over HTTP.
func streamHarness(t *testing.T) (*harness, *corev1.Pod, *httptest.Server) {
	h := newHarness(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintf(w, "page %s", r.URL.Path) }))
	t.Cleanup(web.Close)
	h.agent.cfg.Runtime = dialingFake{h.fake, web}
	h.pod("web", corev1.RestartPolicyAlways, image)
	h.sync()
	srv := httptest.NewServer(h.agent.StreamHandler())
	t.Cleanup(srv.Close)
	return h, h.get("web"), srv
}

// TestPortForwardStreams: over one port-forward connection, a port nothing
// listens on fails on its own error stream while another port of the pod
// keeps answering, as kubelet's server behaves.
func TestPortForwardStreams(t *testing.T) {
	_, p, srv := streamHarness(t)
	tr, up, err := spdy.RoundTripperFor(&rest.Config{})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(fmt.Sprintf("%s/portForward/%s/%s/%s", srv.URL, p.Namespace, p.Name, p.UID))
	conn, _, err := spdy.NewDialer(up, &http.Client{Transport: tr}, http.MethodPost, u).Dial("portforward.k8s.io")
	if err != nil {
		t.Fatalf("SPDY upgrade: %v", err)
	}
	defer conn.Close()
	create := func(port, id, typ string) (io.ReadWriteCloser, error) {
		hdr := http.Header{}
		hdr.Set(corev1.StreamType, typ)
		hdr.Set(corev1.PortHeader, port)
		hdr.Set(corev1.PortForwardRequestIDHeader, id)
		return conn.CreateStream(hdr)
	}
	open := func(port, id, typ string) io.ReadWriteCloser {
		s, err := create(port, id, typ)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	closedErr := open("9", "1", corev1.StreamTypeError)
	create("9", "1", corev1.StreamTypeData) // the server may reset it at once
	msg, _ := io.ReadAll(closedErr)
	if !strings.Contains(string(msg), "connection refused") {
		t.Fatalf("error stream of a closed port: %q", msg)
	}

	open("8080", "2", corev1.StreamTypeError)
	data := open("8080", "2", corev1.StreamTypeData)
	io.WriteString(data, "GET /after HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(data), nil)
	if err != nil {
		t.Fatalf("the open port after the closed one failed: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "page /after" {
		t.Fatalf("page through the open port: %q", body)
	}
}

// TestExecStream: an exec over SPDY, as the API proxies kubectl's, gets the
// command's output and exit code; a container that does not exist is a 400
// before the upgrade.
func TestExecStream(t *testing.T) {
	h, p, srv := streamHarness(t)
	h.fake.ExecFunc = func(_ string, cmd []string) (int, string) { return 3, strings.Join(cmd, " ") + "\n" }
	tr, up, _ := spdy.RoundTripperFor(&rest.Config{})
	u, _ := url.Parse(fmt.Sprintf("%s/exec/%s/%s/%s/app?command=echo&command=hi&output=1&error=1", srv.URL, p.Namespace, p.Name, p.UID))
	ex, err := remotecommand.NewSPDYExecutorForTransports(tr, up, http.MethodPost, u)
	if err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err = ex.StreamWithContext(context.Background(), remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
	if ee, ok := err.(utilexec.ExitError); !ok || ee.ExitStatus() != 3 {
		t.Fatalf("exec exit: %v (%T)", err, err)
	}
	if out.String() != "echo hi\n" {
		t.Fatalf("exec output %q", out.String())
	}

	resp, err := http.Get(fmt.Sprintf("%s/exec/%s/%s/%s/nope?command=true&output=1", srv.URL, p.Namespace, p.Name, p.UID))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `container \"nope\" of this pod has not been started`) {
		t.Fatalf("exec into a missing container: %d %s", resp.StatusCode, body)
	}
}

var _ rt.PortDialer = dialingFake{}

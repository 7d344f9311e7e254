package mycel

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"k8s.io/apimachinery/pkg/version"
	"k8s.io/apiserver/pkg/server/healthz"

	"github.com/mycelfabric/mycel/kubeapi"
	"github.com/mycelfabric/mycel/securityplane/policy"
	"github.com/mycelfabric/mycel/workloadplane/agent"
)

// The Kubernetes version the API presents itself as.
const (
	kubeMinor  = "32"
	kubeGitVer = "v1.32.0"
)

// api is the node's Kubernetes-compatible HTTPS API.
type api struct {
	srv *http.Server
	ln  net.Listener
	url string
}

// startAPI builds the API and listens on Config.APIAddr; serveAPI serves.
func (n *Node) startAPI(context.Context) error {
	srv, err := kubeapi.NewServer(kubeapi.Config{
		Objects:  n.objs,
		Bundle:   n.creds.Bundle(),
		Admitter: admitter{n.policy}, Authorizer: admitter{n.policy},
		Logs: n.agent, Streams: n.streamTransport(),
		Metrics: &agent.FabricUsage{Client: n.objs, Transport: n.streamTransport()},
		Version: version.Info{Major: "1", Minor: kubeMinor, GitVersion: kubeGitVer + "+mycel-" + Version, Platform: "linux/amd64",
			GoVersion: goVersion()},
		Logger:      n.log.With("component", "api"),
		Registry:    n.reg,
		Now:         n.cfg.Now,
		Extra:       map[string]http.Handler{StatusPath: http.HandlerFunc(n.serveStatus)},
		ReadyChecks: n.readyChecks(),
	})
	if err != nil {
		return err
	}
	// Before any component runs: from here on, updates record which parts
	// of an object they changed, and replicas merge per part.
	n.store.SetFields(srv.Fields())
	ln, err := net.Listen("tcp", n.cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another node using this address? pick one with --api-addr)", n.cfg.APIAddr, err)
	}
	urlHost := n.apiHost
	if ip := net.ParseIP(urlHost); ip != nil && ip.IsUnspecified() {
		urlHost = "127.0.0.1"
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	n.api = &api{ln: ln, url: "https://" + net.JoinHostPort(urlHost, port), srv: &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return n.creds.TLSCertificate(), nil },
			// The API verifies client certificates itself, as SVIDs, so it can
			// answer 401 with a Status instead of failing the handshake.
			ClientAuth: tls.RequestClientCert,
		},
	}}
	return nil
}

// serveAPI serves until ctx is done, then stops taking requests and
// answers those it took (for up to 5 s) before it returns.
func (n *Node) serveAPI(ctx context.Context) {
	served := make(chan error, 1)
	if !n.lifecycle.goroutines.Go(func() { served <- n.api.srv.ServeTLS(n.api.ln, "", "") }) {
		return // shutting down already; closeAPI closes the listener
	}
	select {
	case err := <-served:
		n.log.Error("API server stopped", "err", err)
		return
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.api.srv.Shutdown(sctx); err != nil {
		n.api.srv.Close()
	}
	<-served
}

// closeAPI closes the listener if serveAPI never ran.
func (n *Node) closeAPI() error {
	if err := n.api.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// admitter adapts the policy engine to the API's Admitter and Authorizer.
type admitter struct{ e *policy.Engine }

func (a admitter) Admit(ctx context.Context, req kubeapi.AdmissionRequest) error {
	return a.e.Admit(ctx, req)
}

func (a admitter) Authorize(ctx context.Context, req kubeapi.AuthzRequest) error {
	return a.e.Authorize(ctx, req)
}

// readyChecks are what /readyz reports besides ping: the node is ready
// when it has settled (taken its share of ownership), it has reached a
// peer to join (if it was given any), its store answers,
// its bus connection is up and its container runtime answers.
func (n *Node) readyChecks() []healthz.HealthChecker {
	return []healthz.HealthChecker{
		healthz.NamedCheck("settled", func(*http.Request) error {
			if !n.owners.Settled() {
				return errors.New("not settled: still meeting members and catching up")
			}
			return nil
		}),
		healthz.NamedCheck("joined", func(*http.Request) error {
			if err := n.join.pending(); err != nil {
				return fmt.Errorf("not joined: cannot reach any peer to join yet (retrying): %w", err)
			}
			return nil
		}),
		healthz.NamedCheck("store", func(*http.Request) error { return n.store.Check() }),
		healthz.NamedCheck("bus", func(*http.Request) error {
			if !n.bus.Conn().IsConnected() {
				return fmt.Errorf("bus client is %s", n.bus.Conn().Status())
			}
			return nil
		}),
		healthz.NamedCheck("runtime", func(*http.Request) error { return n.agent.Healthy() }),
	}
}

package mycel

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/securityplane/identity"
)

// DemoImage is the image `make image` builds and `mycel up --demo` runs.
const DemoImage = "localhost/mycel-demo:0.1"

// DefaultTrustDomain is the trust domain `mycel up` creates.
const DefaultTrustDomain = "mycel.local"

// UpConfig configures a local fabric.
type UpConfig struct {
	// Dir holds the CA (Dir/ca), the nodes (Dir/nodes/NAME) and the
	// kubeconfig (Dir/kubeconfig).
	Dir string
	// APIAddr is the first node's API address; default 127.0.0.1:6443.
	APIAddr string
	// Nodes is how many nodes to run; zero means 1. Node i (from 2) joins
	// with a token and listens on 127.0.0.i, on the first node's API port.
	Nodes int
	// Demo deploys the demo image.
	Demo bool
	// Logger; nil logs text to stderr.
	Logger *slog.Logger
	// Node carries further node settings (runtime, policies) for tests.
	Node Config
}

// Fabric is a running local fabric.
type Fabric struct {
	Nodes      []*Node
	Kubeconfig string
}

// Up starts a local fabric with embedded defaults: it creates the trust
// domain on first use, starts node-1 (which holds the CA) and any further
// nodes (which join with a token, through node-1 and the DHT), writes a
// kubeconfig for user "admin" with one context per node, and returns once
// kubectl can use the fabric (every API answers and lists every node
// Ready).
func Up(ctx context.Context, cfg UpConfig) (*Fabric, error) {
	if cfg.Dir == "" {
		return nil, errors.New("up: a directory is required")
	}
	if cfg.APIAddr == "" {
		cfg.APIAddr = "127.0.0.1:6443"
	}
	if cfg.Nodes == 0 {
		cfg.Nodes = 1
	}
	_, port, err := net.SplitHostPort(cfg.APIAddr)
	if err != nil {
		return nil, fmt.Errorf("up: --api-addr %q: %w", cfg.APIAddr, err)
	}
	if cfg.Nodes < 1 || cfg.Nodes > 250 {
		return nil, fmt.Errorf("up: --nodes %d: want 1 to 250 (one loopback address each)", cfg.Nodes)
	}
	caDir := filepath.Join(cfg.Dir, "ca")
	a, err := ca.Load(caDir)
	if errors.Is(err, ca.ErrNoCA) {
		a, err = ca.Init(caDir, DefaultTrustDomain)
	}
	if err != nil {
		return nil, err
	}
	f := &Fabric{Kubeconfig: filepath.Join(cfg.Dir, "kubeconfig")}
	fail := func(err error) (*Fabric, error) {
		f.Close(context.Background())
		return nil, err
	}
	var contexts []KubeconfigContext
	for i := 1; i <= cfg.Nodes; i++ {
		nc := cfg.Node
		nc.Name = fmt.Sprintf("node-%d", i)
		nc.DataDir = filepath.Join(cfg.Dir, "nodes", nc.Name)
		nc.APIAddr = cfg.APIAddr
		if nc.Logger == nil {
			nc.Logger = cfg.Logger
		}
		if i == 1 {
			nc.CADir = caDir
		} else {
			nc.APIAddr = net.JoinHostPort(fmt.Sprintf("127.0.0.%d", i), port)
			if !identity.HasCredentials(nc.DataDir) {
				tok, err := a.CreateToken(caDir, 10*time.Minute, 1)
				if err != nil {
					return fail(err)
				}
				nc.Join = tok.String()
			}
			nc.Bootstrap = f.Nodes[0].P2PAddrs()
		}
		n, err := Start(ctx, nc)
		if err != nil {
			return fail(fmt.Errorf("up: start %s: %w", nc.Name, err))
		}
		f.Nodes = append(f.Nodes, n)
		contexts = append(contexts, KubeconfigContext{Name: n.Name(), Server: n.URL()})
	}
	kc, err := Kubeconfig(a, "admin", 365*24*time.Hour, contexts...)
	if err != nil {
		return fail(err)
	}
	if err := ca.WriteFile(f.Kubeconfig, kc, 0o600); err != nil {
		return fail(err)
	}
	client, err := apiClient(kc)
	if err != nil {
		return fail(err)
	}
	for _, n := range f.Nodes {
		for _, m := range f.Nodes {
			if err := waitReady(ctx, client, n, m.Name()); err != nil {
				return fail(err)
			}
		}
	}
	if cfg.Demo {
		if err := deployDemo(ctx, client, f.Nodes[0].URL()); err != nil {
			return fail(err)
		}
	}
	return f, nil
}

// Close stops the fabric and removes the containers its nodes started.
func (f *Fabric) Close(ctx context.Context) error {
	var errs []error
	for _, n := range f.Nodes {
		// Stop the node first, so its agent does not replace what is removed.
		errs = append(errs, n.Close())
		if n.runtime != nil {
			if err := n.RemoveContainers(ctx); err != nil {
				errs = append(errs, fmt.Errorf("remove containers of %s: %w", n.Name(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// apiClient is an HTTPS client with the kubeconfig's credentials.
func apiClient(kubeconfig []byte) (*http.Client, error) {
	client, _, err := contextClient(kubeconfig, "")
	return client, err
}

// contextClient is an HTTPS client with the credentials of a kubeconfig
// context ("" for the current one), and that context's server URL.
func contextClient(kubeconfig []byte, context string) (*http.Client, string, error) {
	cfg, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, "", err
	}
	if context == "" {
		context = cfg.CurrentContext
	}
	kctx := cfg.Contexts[context]
	if kctx == nil || cfg.AuthInfos[kctx.AuthInfo] == nil || cfg.Clusters[kctx.Cluster] == nil {
		return nil, "", fmt.Errorf("kubeconfig has no complete context %q", context)
	}
	ai, cluster := cfg.AuthInfos[kctx.AuthInfo], cfg.Clusters[kctx.Cluster]
	cert, err := tls.X509KeyPair(ai.ClientCertificateData, ai.ClientKeyData)
	if err != nil {
		return nil, "", fmt.Errorf("context %q: client certificate: %w", context, err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cluster.CertificateAuthorityData)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
	}}}, cluster.Server, nil
}

// FetchStatus asks the node behind a kubeconfig context ("" for the current
// one) for the fabric as it sees it.
func FetchStatus(ctx context.Context, kubeconfig []byte, context string) (*ClusterStatus, error) {
	client, server, err := contextClient(kubeconfig, context)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, server+StatusPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("%s: %s: %s", server+StatusPath, resp.Status, strings.TrimSpace(string(body)))
	}
	var st ClusterStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return nil, fmt.Errorf("%s: %w", server+StatusPath, err)
	}
	return &st, nil
}

// waitReady polls n's API until it reports node name Ready.
func waitReady(ctx context.Context, client *http.Client, n *Node, name string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	last := "no answer yet"
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL()+"/api/v1/nodes/"+name, nil)
		if resp, err := client.Do(req); err != nil {
			last = err.Error()
		} else {
			var node corev1.Node
			err := json.NewDecoder(resp.Body).Decode(&node)
			resp.Body.Close()
			if err == nil {
				for _, c := range node.Status.Conditions {
					if c.Type == corev1.NodeReady {
						if c.Status == corev1.ConditionTrue {
							return nil
						}
						last = c.Message
					}
				}
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("up: %s does not list %s Ready: %s", n.Name(), name, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// deployDemo creates the demo Deployment through the API, as kubectl would.
func deployDemo(ctx context.Context, client *http.Client, url string) error {
	d := &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{Kind: "Deployment", APIVersion: "apps/v1"},
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: "default", Labels: map[string]string{"app": "demo"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "demo"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "demo"}},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: DemoImage, ImagePullPolicy: corev1.PullNever,
					Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
				}}},
			},
		},
	}
	body, _ := json.Marshal(d)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/apis/apps/v1/namespaces/default/deployments", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("up: deploy demo: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusConflict || resp.StatusCode == http.StatusCreated {
		return nil
	}
	var st metav1.Status
	json.NewDecoder(resp.Body).Decode(&st)
	return fmt.Errorf("up: deploy demo: %d %s", resp.StatusCode, st.Message)
}

func ptr[T any](v T) *T { return &v }

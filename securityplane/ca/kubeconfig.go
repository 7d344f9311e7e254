package ca

import (
	"fmt"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KubeconfigContext is one context of a kubeconfig: a server URL under a name.
type KubeconfigContext struct {
	Name   string
	Server string
}

// AdminGroup is the group whose members the default authorization policy
// lets do everything (policies/authz.rego).
const AdminGroup = "mycel:admins"

// Kubeconfig issues user NAME a client certificate
// (spiffe://TD/user/NAME, groups as its Organizations) valid for ttl and
// returns a kubeconfig with one context per server; the first is current.
func (a *Authority) Kubeconfig(user string, groups []string, ttl time.Duration, contexts ...KubeconfigContext) ([]byte, error) {
	if len(contexts) == 0 {
		return nil, fmt.Errorf("kubeconfig: at least one server is required")
	}
	if ttl <= 0 {
		return nil, fmt.Errorf("kubeconfig: --ttl must be positive, got %s (the certificate would be expired already)", ttl)
	}
	id, err := UserID(a.TrustDomain(), user)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: user %q: %w (use letters, digits, '-', '_' and '.')", user, err)
	}
	is, err := a.Issue(Request{ID: id, CommonName: user, Organizations: groups, TTL: ttl, Client: true})
	if err != nil {
		return nil, err
	}
	keyPEM, err := is.KeyPEM()
	if err != nil {
		return nil, err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: is.CertPEM(), ClientKeyData: keyPEM}
	for _, c := range contexts {
		cfg.Clusters[c.Name] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: EncodeCerts(a.Root())}
		cfg.Contexts[c.Name] = &clientcmdapi.Context{Cluster: c.Name, AuthInfo: user, Namespace: "default"}
	}
	cfg.CurrentContext = contexts[0].Name
	return clientcmd.Write(*cfg)
}

// ClientConfig is the client configuration of a kubeconfig's context
// ("" for the current one).
func ClientConfig(kubeconfig []byte, context string) (*rest.Config, error) {
	kc, err := clientcmd.Load(kubeconfig)
	if err != nil {
		return nil, err
	}
	return clientcmd.NewNonInteractiveClientConfig(*kc, context, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
}

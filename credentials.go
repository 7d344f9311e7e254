package mycel

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/securityplane/join"
)

// Credential files in a node's data dir. A node that joined with a token
// keeps its SVID key and the trust bundle there, so it restarts without one.
const (
	SVIDFile    = "svid.pem"
	SVIDKeyFile = "svid.key"
	BundleFile  = "bundle.pem"
	IssuersFile = "issuers"
)

// svid is one issued certificate and its key.
type svid struct {
	key  crypto.Signer
	cert *x509.Certificate
}

// issueFunc obtains a fresh SVID (from the local CA, or from an issuer).
type issueFunc func(ctx context.Context, current *svid) (*svid, error)

// credentials hold the node's X.509-SVID (spiffe://TD/node/PEER), which also
// serves the API (SANs for the API host), and renew it at two thirds of its
// life.
type credentials struct {
	bundle  *x509bundle.Bundle
	issue   issueFunc
	dataDir string

	mu  sync.Mutex
	cur *svid
	tls *tls.Certificate
}

// sans are the SANs a node asks for: its API host, its name, loopback.
func sans(name, apiHost string) ([]string, []net.IP) {
	dns := []string{"localhost", name}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	if ip := net.ParseIP(apiHost); ip != nil {
		if ip.IsUnspecified() {
			ips = append(ips, interfaceIPs()...)
		} else {
			ips = append(ips, ip)
		}
	} else if apiHost != "" {
		dns = append(dns, apiHost)
	}
	return dns, ips
}

func interfaceIPs() []net.IP {
	addrs, _ := net.InterfaceAddrs()
	var out []net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, n.IP)
		}
	}
	return out
}

// localIssuer issues SVIDs from the CA this node holds.
func localIssuer(a *ca.Authority, peerID, name, apiHost string, ttl time.Duration) issueFunc {
	dns, ips := sans(name, apiHost)
	return func(context.Context, *svid) (*svid, error) {
		id, err := ca.NodeID(a.TrustDomain(), peerID)
		if err != nil {
			return nil, err
		}
		is, err := a.Issue(ca.Request{ID: id, CommonName: peerID, DNSNames: dns, IPs: ips, TTL: ttl, Server: true, Client: true})
		if err != nil {
			return nil, err
		}
		return &svid{key: is.Key, cert: is.Cert}, nil
	}
}

// subject is what a node asks an issuer to put in its SVID besides its ID.
func subject(name, apiHost string) join.Subject {
	dns, ips := sans(name, apiHost)
	sub := join.Subject{DNSNames: dns}
	for _, ip := range ips {
		sub.IPs = append(sub.IPs, ip.String())
	}
	return sub
}

// remoteIssuer renews SVIDs at any of the issuers, by presenting the current one.
func remoteIssuer(h host.Host, bundle *x509bundle.Bundle, issuers []string, name, apiHost string) issueFunc {
	sub := subject(name, apiHost)
	return func(ctx context.Context, cur *svid) (*svid, error) {
		var errs []error
		for _, addr := range issuers {
			ai, err := peer.AddrInfoFromString(addr)
			if err != nil {
				continue
			}
			c, err := join.Renew(ctx, h, *ai, &join.Credentials{Key: cur.key, Chain: []*x509.Certificate{cur.cert}, Bundle: bundle}, sub)
			if err == nil {
				return &svid{key: c.Key, cert: c.Chain[0]}, nil
			}
			errs = append(errs, err)
		}
		return nil, fmt.Errorf("renew SVID at %d issuers: %w", len(issuers), errors.Join(errs...))
	}
}

func newCredentials(ctx context.Context, bundle *x509bundle.Bundle, issue issueFunc, first *svid, dataDir string) (*credentials, error) {
	c := &credentials{bundle: bundle, issue: issue, dataDir: dataDir}
	if first == nil {
		var err error
		if first, err = issue(ctx, nil); err != nil {
			return nil, err
		}
	}
	if err := c.set(first); err != nil {
		return nil, err
	}
	return c, nil
}

// set installs and persists an SVID.
func (c *credentials) set(s *svid) error {
	keyPEM, err := ca.EncodeKey(s.key)
	if err != nil {
		return err
	}
	if err := ca.WriteFile(filepath.Join(c.dataDir, SVIDKeyFile), keyPEM, 0o600); err != nil {
		return err
	}
	if err := ca.WriteFile(filepath.Join(c.dataDir, SVIDFile), ca.EncodeCerts(s.cert), 0o644); err != nil {
		return err
	}
	c.mu.Lock()
	c.cur, c.tls = s, &tls.Certificate{Certificate: [][]byte{s.cert.Raw}, PrivateKey: s.key, Leaf: s.cert}
	c.mu.Unlock()
	return nil
}

func (c *credentials) current() *svid {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

func (c *credentials) tlsCert() *tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tls
}

// rotate renews the SVID at two thirds of its lifetime until ctx is done.
func (c *credentials) rotate(ctx context.Context, log *slog.Logger) {
	for {
		cur := c.current().cert
		wait := time.Until(cur.NotBefore.Add(cur.NotAfter.Sub(cur.NotBefore) * 2 / 3))
		t := time.NewTimer(max(wait, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		next, err := c.issue(ctx, c.current())
		if err == nil {
			err = c.set(next)
		}
		if err != nil {
			log.Error("renew node SVID; retrying in a minute", "err", err, "expires", cur.NotAfter)
			sleep(ctx, time.Minute)
			continue
		}
		log.Info("renewed node SVID", "notAfter", next.cert.NotAfter)
	}
}

// loadJoined reads the credentials a node kept from an earlier join: its
// SVID (if still valid), its key, the bundle and the issuers.
func loadJoined(dataDir string) (*svid, *x509bundle.Bundle, []string, error) {
	certs, err := ca.ReadCerts(filepath.Join(dataDir, SVIDFile))
	if err != nil {
		return nil, nil, nil, err
	}
	key, err := ca.ReadKey(filepath.Join(dataDir, SVIDKeyFile))
	if err != nil {
		return nil, nil, nil, err
	}
	roots, err := ca.ReadCerts(filepath.Join(dataDir, BundleFile))
	if err != nil {
		return nil, nil, nil, err
	}
	id, err := x509svid.IDFromCert(certs[0])
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: %w", SVIDFile, err)
	}
	bundle := x509bundle.FromX509Authorities(id.TrustDomain(), roots)
	if _, _, err := x509svid.Verify(certs, bundle); err != nil {
		return nil, nil, nil, fmt.Errorf("the SVID kept in %s no longer verifies (%v): join again with a new token (--join)", dataDir, err)
	}
	raw, err := os.ReadFile(filepath.Join(dataDir, IssuersFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil, err
	}
	return &svid{key: key, cert: certs[0]}, bundle, strings.Fields(string(raw)), nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// GetX509SVID implements x509svid.Source with the current SVID, so TLS
// configurations built from the credentials follow every renewal.
func (c *credentials) GetX509SVID() (*x509svid.SVID, error) {
	cur := c.current()
	id, err := x509svid.IDFromCert(cur.cert)
	if err != nil {
		return nil, err
	}
	return &x509svid.SVID{ID: id, Certificates: []*x509.Certificate{cur.cert}, PrivateKey: cur.key}, nil
}

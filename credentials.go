package mycel

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mycelfabric/mycel/securityplane/ca"
)

// credentials hold the node's X.509-SVID (spiffe://TD/node/PEER), which also
// serves the API (SANs for the API host), renewed at two thirds of its life.
type credentials struct {
	ca             *ca.Authority
	peer           string
	dns            []string
	ips            []net.IP
	ttl            time.Duration
	mu             sync.Mutex
	issued         *ca.Issued
	tlsCertificate *tls.Certificate
}

func newCredentials(a *ca.Authority, peer, name, apiHost string, ttl time.Duration) (*credentials, error) {
	c := &credentials{ca: a, peer: peer, ttl: ttl, dns: []string{"localhost", name}, ips: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}}
	if ip := net.ParseIP(apiHost); ip != nil {
		if ip.IsUnspecified() {
			c.ips = append(c.ips, interfaceIPs()...)
		} else {
			c.ips = append(c.ips, ip)
		}
	} else if apiHost != "" {
		c.dns = append(c.dns, apiHost)
	}
	if err := c.renew(); err != nil {
		return nil, err
	}
	return c, nil
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

func (c *credentials) renew() error {
	id, err := ca.NodeID(c.ca.TrustDomain(), c.peer)
	if err != nil {
		return err
	}
	is, err := c.ca.Issue(ca.Request{ID: id, CommonName: c.peer, DNSNames: c.dns, IPs: c.ips, TTL: c.ttl, Server: true, Client: true})
	if err != nil {
		return err
	}
	cert := &tls.Certificate{Certificate: [][]byte{is.Cert.Raw}, PrivateKey: is.Key, Leaf: is.Cert}
	c.mu.Lock()
	c.issued, c.tlsCertificate = is, cert
	c.mu.Unlock()
	return nil
}

func (c *credentials) current() *ca.Issued {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.issued
}

func (c *credentials) tlsCert() *tls.Certificate {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tlsCertificate
}

// rotate renews the SVID at two thirds of its lifetime until ctx is done.
func (c *credentials) rotate(ctx context.Context, log *slog.Logger) {
	for {
		cur := c.current().Cert
		wait := time.Until(cur.NotBefore.Add(cur.NotAfter.Sub(cur.NotBefore) * 2 / 3))
		t := time.NewTimer(max(wait, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := c.renew(); err != nil {
			log.Error("renew node SVID", "err", fmt.Errorf("%w; retrying in a minute", err))
			sleep(ctx, time.Minute)
			continue
		}
		log.Info("renewed node SVID", "notAfter", c.current().Cert.NotAfter)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

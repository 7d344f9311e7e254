package identity

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"

	"github.com/mycelfabric/mycel/securityplane/ca"
	"github.com/mycelfabric/mycel/securityplane/datakey"
	"github.com/mycelfabric/mycel/securityplane/join"
)

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

// localIssuer issues SVIDs from the CA this node holds, with the data keys
// of its directory.
func localIssuer(a *ca.Authority, dir, peerID, name, apiHost string, ttl time.Duration) issueFunc {
	dns, ips := sans(name, apiHost)
	return func(context.Context, *svid) (*svid, []datakey.Key, error) {
		id, err := ca.NodeID(a.TrustDomain(), peerID)
		if err != nil {
			return nil, nil, err
		}
		is, err := a.Issue(ca.Request{ID: id, CommonName: peerID, DNSNames: dns, IPs: ips, TTL: ttl, Server: true, Client: true})
		if err != nil {
			return nil, nil, err
		}
		ring, err := ca.DataKeys(dir, nil)
		if err != nil {
			return nil, nil, err
		}
		return &svid{key: is.Key, cert: is.Cert}, ring.Keys(), nil
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
	return func(ctx context.Context, cur *svid) (*svid, []datakey.Key, error) {
		var errs []error
		for _, addr := range issuers {
			ai, err := peer.AddrInfoFromString(addr)
			if err != nil {
				continue
			}
			c, err := join.Renew(ctx, h, *ai, &join.Credentials{Key: cur.key, Chain: []*x509.Certificate{cur.cert}, Bundle: bundle}, sub)
			if err == nil {
				return &svid{key: c.Key, cert: c.Chain[0]}, c.DataKeys, nil
			}
			errs = append(errs, err)
		}
		return nil, nil, fmt.Errorf("renew SVID at %d issuers: %w", len(issuers), errors.Join(errs...))
	}
}

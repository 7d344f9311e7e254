// Package tlsconf builds the mTLS configurations of node-to-node links with
// go-spiffe: each side presents its X.509-SVID and accepts only peers whose
// SVID verifies against the trust bundle and passes an authorizer.
package tlsconf

import (
	"crypto/tls"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// Mutual returns a configuration usable on both ends of a link (NATS routes
// dial and accept with the same one): it serves and presents svid's current
// certificate and requires and verifies the peer's.
func Mutual(svid x509svid.Source, bundle x509bundle.Source, authorize tlsconfig.Authorizer) *tls.Config {
	c := tlsconfig.MTLSServerConfig(svid, bundle, authorize)
	c.GetClientCertificate = tlsconfig.GetClientCertificate(svid)
	// Peers are identified by SPIFFE ID, not host name: VerifyPeerCertificate
	// does the verification, for both directions.
	c.InsecureSkipVerify = true
	return c
}

// Client returns the configuration of a client of a node's service.
func Client(svid x509svid.Source, bundle x509bundle.Source, authorize tlsconfig.Authorizer) *tls.Config {
	return tlsconfig.MTLSClientConfig(svid, bundle, authorize)
}

// MemberOf authorizes every identity of the trust domain.
func MemberOf(td spiffeid.TrustDomain) tlsconfig.Authorizer { return tlsconfig.AuthorizeMemberOf(td) }

// Nodes authorizes only node identities (spiffe://TD/node/...) of the trust domain.
func Nodes(td spiffeid.TrustDomain) tlsconfig.Authorizer {
	return tlsconfig.AdaptMatcher(func(id spiffeid.ID) error {
		if id.MemberOf(td) && len(id.Path()) > len("/node/") && id.Path()[:6] == "/node/" {
			return nil
		}
		return &notNode{id}
	})
}

type notNode struct{ id spiffeid.ID }

func (e *notNode) Error() string {
	return "tlsconf: " + e.id.String() + " is not a node of the trust domain"
}

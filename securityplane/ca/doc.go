// Package ca is a Mycel trust domain's certificate authority: it creates the
// root (ECDSA P-256), keeps it on disk, and issues X.509-SVIDs for nodes,
// users and workloads, plus TLS serving certificates for node APIs.
//
// Every certificate it issues is a SPIFFE X.509-SVID: exactly one URI SAN
// naming a SPIFFE ID in the trust domain, verifiable with go-spiffe's x509svid
// against the bundle. Only the root wiring package and cmd/mycel import it.
package ca

// Package identity gives a node its X.509-SVID (spiffe://TD/node/PEER) and
// keeps it fresh: issued by the trust domain's CA when the node holds it
// (the node then also serves joins), obtained by redeeming a join token,
// or loaded from what an earlier join left in the data dir; renewed at two
// thirds of its life, at the local CA or at any issuer. The same SVID
// serves the node's API (SANs for its API host).
//
// It is part of the security plane and imports no other plane; the root
// package wires it to the libp2p host (for joins and renewals) and hands
// the Source to the bus, the API and the node record.
package identity

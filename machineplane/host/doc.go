// Package host owns a node's libp2p identity: the ed25519 key created once in
// the data dir, and the peer ID derived from it, which is the node's name on
// the wire. The libp2p host itself (transports, DHT) is built on this key.
package host

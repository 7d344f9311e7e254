// Package noderecord defines the signed NodeRecord a node publishes in the
// DHT under /mycel-node/<peerID>, the DHT validator that admits only records
// that are signed by that peer's key and carry an X.509-SVID of the trust
// domain naming that peer, and the capability keys nodes provide so
// placement can find them by what they have.
package noderecord

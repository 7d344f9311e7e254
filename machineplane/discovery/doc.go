// Package discovery publishes what a node is and finds nodes by what they
// are: the Publisher signs the node's NodeRecord with strictly increasing
// sequence numbers, stores it in the DHT under /mycel-node/<peerID> and
// provides its capability keys; FindNodes answers which nodes have a set
// of capabilities. It is part of the machine plane.
package discovery

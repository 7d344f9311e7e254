// Package owner decides which node reconciles each workload: the live
// member with the highest rendezvous hash of (workload key, peer ID), once
// the node has settled. Settling is how a starting node avoids believing
// it owns everything: it listens for the fabric first, waits to meet a
// member if it should have some, and catches up with one.
//
// The workload key itself (the root of an object's controller chain) is
// objects.Chain.WorkloadKey.
package owner

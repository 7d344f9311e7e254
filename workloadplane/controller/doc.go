// Package controller reconciles workload objects: Deployments into
// ReplicaSets (rolling updates and Recreate), ReplicaSets into Pods,
// garbage collection of objects whose owner is gone, and namespace
// deletion. Controllers are level-triggered: every change of a watched
// resource, and a periodic resync, reconciles all objects of that kind,
// which is cheap at single-node scale; the owner-based sharding of the
// placement issue narrows this to the workloads a node owns.
package controller

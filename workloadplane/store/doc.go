// Package store is Mycel's object store for desired and observed state: a map
// from keys ("kind/namespace/name") to JSON documents, persisted in bbolt.
//
// It is shaped for replication. Every record carries a hybrid logical clock
// stamp and the writing node, so replicas can merge last-writer-wins with a
// node-ID tie-break (Merge); deletes leave tombstones until they are collected.
// Independently of the stamps, every change this replica applies gets the next
// value of a per-replica monotonic resourceVersion, which orders its watch log:
// a watcher that gives the last resourceVersion it saw resumes exactly there,
// or learns (ErrExpired) that it must list again.
//
// The store knows nothing of Kubernetes types; kubeapi and the controllers
// import it.
package store

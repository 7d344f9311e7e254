// Package kubeapi is Mycel's Kubernetes-compatible HTTPS API: enough of the
// Kubernetes REST surface (discovery, OpenAPI, CRUD with watch, Tables,
// patches, status and scale subresources, logs) that stock kubectl and
// client-go work against any Mycel node.
//
// It stores objects through a small Store interface (the replicated object
// store), asks an Admitter (OPA policy) before every create and update,
// authenticates every request by its trust-domain client certificate, and
// streams logs through a LogStreamer. The root package wires these in.
package kubeapi

// Package kubeapi is Mycel's Kubernetes-compatible HTTPS API: enough of the
// Kubernetes REST surface (discovery, OpenAPI, CRUD with watch, Tables,
// patches, status and scale subresources, logs) that stock kubectl and
// client-go work against any Mycel node.
//
// It is HTTP only: routing, authentication (every request by its
// trust-domain client certificate), content negotiation, discovery,
// OpenAPI, watch and patch serving. Objects, their resources, defaults and
// validation are the object layer's (workloadplane/objects); kubeapi asks
// an Admitter (OPA policy) between preparing a create or update there and
// writing it, and streams logs through a LogStreamer. Only the root package
// and cmd/ import it.
package kubeapi

// Package objects is the typed object layer of the workload plane: the
// Kubernetes-shaped objects the fabric keeps in its replicated store, with
// the rules that make them behave as Kubernetes users expect (server-owned
// metadata, defaults, validation, status kept apart from spec,
// resourceVersions and optimistic concurrency, graceful deletion), Events,
// change notification, and the workload key that decides ownership.
//
// Each served resource is one file holding a function that returns its
// Resource, with its hooks (defaults, validate, initial status, selectable
// fields, Table columns, scale accessors, graceful-delete rule), listed in
// resources() in registry.go. The package has its own runtime.Scheme, built
// from the resources' API groups (k8s.io/api install functions and
// api/mycel/v1alpha1), so a mycel.io kind is one more file.
//
// Controllers, the scheduler and the agent program against it through
// small interfaces of their own; kubeapi serves it over HTTP. It imports
// the store and nothing above the workload plane.
package objects

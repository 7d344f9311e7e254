// Package v1alpha1 is Mycel's own API group, mycel.io/v1alpha1, and the
// well-known labels and annotations Mycel sets on or reads from Kubernetes
// objects. Any package may import it: it holds names and types, no behaviour.
//
// A Mycel kind is a Go type here (with its List type and deepcopy methods)
// plus one file in workloadplane/objects that registers it with its hooks.
package v1alpha1

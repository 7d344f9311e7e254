package objects

import (
	"fmt"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"

	mycelv1alpha1 "github.com/mycelfabric/mycel/api/mycel/v1alpha1"
)

// resources lists every served resource, in the order discovery shows them.
// It is the one list that discovery, OpenAPI, namespace deletion, garbage
// collection and the scheme read: a new kind is one file with a function
// returning its Resource, and one line here.
func resources() []*Resource {
	return []*Resource{
		namespaceResource(),
		podResource(),
		nodeResource(),
		eventResource(),
		deploymentResource(),
		replicaSetResource(),
		daemonSetResource(),
		controllerRevisionResource(),
		jobResource(),
		cronJobResource(),
		configMapResource(),
		secretResource(),
		serviceAccountResource(),
		podDisruptionBudgetResource(),
	}
}

// registry is the set of served resources and the scheme of their types.
type registry struct {
	all    []*Resource
	byGVR  map[schema.GroupVersionResource]*Resource
	byGVK  map[schema.GroupVersionKind]*Resource
	scheme *runtime.Scheme
	codecs serializer.CodecFactory
}

func newRegistry(rs []*Resource) (*registry, error) {
	g := &registry{all: rs, byGVR: map[schema.GroupVersionResource]*Resource{}, byGVK: map[schema.GroupVersionKind]*Resource{}, scheme: runtime.NewScheme()}
	// Meta types (Status, Table, PartialObjectMetadata, WatchEvent, options)
	// and autoscaling/v1 Scale, which every scale subresource answers with.
	metav1.AddToGroupVersion(g.scheme, schema.GroupVersion{Version: "v1"})
	installs := []func(*runtime.Scheme) error{metav1.AddMetaToScheme, autoscalingv1.AddToScheme, mycelv1alpha1.AddToScheme}
	for _, r := range rs {
		gvr := r.GroupVersion.WithResource(r.Plural)
		if g.byGVR[gvr] != nil || g.byGVK[r.GVK()] != nil {
			return nil, fmt.Errorf("objects: %s registered twice", gvr)
		}
		g.byGVR[gvr], g.byGVK[r.GVK()] = r, r
		installs = append(installs, r.install)
	}
	for _, install := range installs {
		if err := install(g.scheme); err != nil {
			return nil, fmt.Errorf("objects: scheme: %w", err)
		}
	}
	for _, r := range rs {
		if !g.scheme.Recognizes(r.GVK()) {
			return nil, fmt.Errorf("objects: %s: its install function does not register kind %s", r.GroupResource(), r.GVK())
		}
	}
	g.codecs = serializer.NewCodecFactory(g.scheme)
	return g, nil
}

// groupVersions lists the served group versions in registration order.
func (g *registry) groupVersions() []schema.GroupVersion {
	var out []schema.GroupVersion
	seen := map[schema.GroupVersion]bool{}
	for _, r := range g.all {
		if !seen[r.GroupVersion] {
			seen[r.GroupVersion] = true
			out = append(out, r.GroupVersion)
		}
	}
	return out
}

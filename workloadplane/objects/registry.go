package objects

import (
	"fmt"
	"sync/atomic"

	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
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
		hpaResource(),
		crdResource(),
	}
}

// registry is the set of served resources and the scheme of their types:
// the built-in ones, and the custom resources of the CRDs (which are
// unstructured and not in the scheme).
type registry struct {
	all    []*Resource
	byGVR  map[schema.GroupVersionResource]*Resource
	byGVK  map[schema.GroupVersionKind]*Resource
	byList map[schema.GroupVersionKind]*Resource
	scheme *runtime.Scheme
	codecs serializer.CodecFactory
	// crds are the CRDs whose resources are served, and gen counts the
	// registries made, so users of crds can tell a change.
	crds []*apiextensionsv1.CustomResourceDefinition
	gen  uint64
}

// registries counts the registries ServeCustom made.
var registries atomic.Uint64

// index adds rs to the registry's maps.
func (g *registry) index(rs []*Resource) error {
	for _, r := range rs {
		gvr := r.GroupVersion.WithResource(r.Plural)
		if g.byGVR[gvr] != nil || g.byGVK[r.GVK()] != nil {
			return fmt.Errorf("objects: %s registered twice", gvr)
		}
		g.byGVR[gvr], g.byGVK[r.GVK()] = r, r
		g.byList[r.GroupVersion.WithKind(r.Kind+"List")] = r
	}
	return nil
}

// with returns a registry of g's resources and custom ones, sharing g's
// scheme.
func (g *registry) with(custom []*Resource, crds []*apiextensionsv1.CustomResourceDefinition) (*registry, error) {
	out := &registry{all: append(append([]*Resource(nil), g.all...), custom...), scheme: g.scheme, codecs: g.codecs, crds: crds, gen: registries.Add(1),
		byGVR: map[schema.GroupVersionResource]*Resource{}, byGVK: map[schema.GroupVersionKind]*Resource{}, byList: map[schema.GroupVersionKind]*Resource{}}
	return out, out.index(out.all)
}

func newRegistry(rs []*Resource) (*registry, error) {
	g := &registry{all: rs, byGVR: map[schema.GroupVersionResource]*Resource{}, byGVK: map[schema.GroupVersionKind]*Resource{},
		byList: map[schema.GroupVersionKind]*Resource{}, scheme: runtime.NewScheme()}
	// Meta types (Status, Table, PartialObjectMetadata, WatchEvent, options)
	// and autoscaling/v1 Scale, which every scale subresource answers with.
	metav1.AddToGroupVersion(g.scheme, schema.GroupVersion{Version: "v1"})
	installs := []func(*runtime.Scheme) error{metav1.AddMetaToScheme, autoscalingv1.AddToScheme, mycelv1alpha1.AddToScheme}
	if err := g.index(rs); err != nil {
		return nil, err
	}
	for _, r := range rs {
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

package v1alpha1

// Labels and annotations on API objects.
const (
	// LabelPeerID on a Node names the node's libp2p peer (set by the node
	// itself); on a container, the peer of the node that created it.
	LabelPeerID = "mycel.io/peer-id"
	// LabelUnschedulable=true on a Node keeps new pods off it.
	LabelUnschedulable = "mycel.io/unschedulable"
	// AnnotationRequires on a pod names the software it needs, as
	// comma-separated constraints on the versions nodes advertise:
	// "mycel>=0.2.0", "runtime=podman", "runtime>=podman/4.3", "arch=amd64".
	AnnotationRequires = "mycel.io/requires"
)

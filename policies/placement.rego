# Mycel's default placement policy, evaluated by each candidate node when
# an owner tenders a pod to it.
#
# Input:
#   pod        the Pod to place (Kubernetes JSON)
#   node       {name, zone, labels, allocatable, free, requests}; the last
#              three are {milliCPU, memoryBytes, pods}: what the node has,
#              what is left after bound pods and reservations, and what the
#              pod asks for. The node has already checked that the pod fits.
#   requester  the SPIFFE ID of the owner asking
#   siblings   {node, zone}: pods of the same workload already on this
#              node and in its zone
#
# Output: `deny`, a set of messages (any one declines the tender; each
# reaches `kubectl describe pod` as "denied by placement policy: <msg>"),
# and `score`, a number: the owner awards the highest.
package mycel.placement

deny contains msg if {
	input.node.labels["mycel.io/unschedulable"] == "true"
	msg := "unschedulable: the node is labelled mycel.io/unschedulable=true"
}

# share is the fraction of total that is left after the pod.
share(left, total) := left / total if total > 0

share(_, total) := 0 if total <= 0

free_after := (share(input.node.free.milliCPU - input.node.requests.milliCPU, input.node.allocatable.milliCPU)
	+ share(input.node.free.memoryBytes - input.node.requests.memoryBytes, input.node.allocatable.memoryBytes)) / 2

# Spread first (a node already running one of the workload's pods loses 100
# points per pod, a zone 25 per pod), then prefer the node with more left free
# (up to 100 points).
default score := 0

score := ((100 * free_after) - (100 * object.get(input, ["siblings", "node"], 0))) - (25 * object.get(input, ["siblings", "zone"], 0))

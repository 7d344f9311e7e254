# Mycel's default placement policy, evaluated by each candidate node when
# an owner tenders a pod to it.
#
# Input:
#   pod        the Pod to place (Kubernetes JSON)
#   node       {name, zone, labels, allocatable, free, requests,
#              percentFreeAfter}; allocatable, free and requests are
#              {milliCPU, memoryBytes, pods}: what the node has, what is left
#              after bound pods and reservations, and what the pod asks for;
#              percentFreeAfter is {cpu, memory}, the whole percentages of
#              allocatable left after the pod. The node has already checked
#              that the pod fits.
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

# Spread first (a node already running one of the workload's pods loses 200
# points per pod, a zone 50 per pod), then prefer the node with more left free
# (the percentages of CPU and memory left after the pod, summed: up to 200
# points). Everything is a small integer, which OPA computes fastest.
default score := 0

score := ((input.node.percentFreeAfter.cpu + input.node.percentFreeAfter.memory) - (200 * input.siblings.node)) - (50 * input.siblings.zone)

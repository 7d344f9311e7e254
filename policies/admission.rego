# Mycel's default admission policy.
#
# Input: {"request": <AdmissionRequest>} shaped like a Kubernetes
# AdmissionReview request: operation, kind{group,version,kind}, namespace,
# name, object, oldObject, userInfo{username, spiffeID}.
#
# A request is denied when `deny` is non-empty; each message reaches the user
# in a 403. Start each message with the rule's name so users can tell which
# rule denied them.
package mycel.admission

# Kinds whose objects carry a pod template.
workload_kinds := {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"}

pod_spec := input.request.object.spec if input.request.kind.kind == "Pod"

pod_spec := input.request.object.spec.template.spec if input.request.kind.kind in workload_kinds

containers contains c if some c in pod_spec.containers

containers contains c if some c in pod_spec.initContainers

deny contains msg if {
	some c in containers
	c.securityContext.privileged == true
	msg := sprintf("no-privileged-containers: container %q asks for privileged mode, which this fabric does not allow", [c.name])
}

deny contains msg if {
	pod_spec.hostNetwork == true
	msg := "no-host-network: hostNetwork is not allowed; publish ports with containerPort/hostPort instead"
}

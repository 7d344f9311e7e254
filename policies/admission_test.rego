package mycel.admission_test

import data.mycel.admission

pod(spec) := {"request": {"operation": "CREATE", "kind": {"group": "", "version": "v1", "kind": "Pod"}, "object": {"spec": spec}}}

deployment(spec) := {"request": {"operation": "CREATE", "kind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "object": {"spec": {"template": {"spec": spec}}}}}

test_plain_pod_allowed if {
	count(admission.deny) == 0 with input as pod({"containers": [{"name": "web", "image": "nginx"}]})
}

test_privileged_pod_denied if {
	some msg in admission.deny with input as pod({"containers": [{"name": "web", "image": "nginx", "securityContext": {"privileged": true}}]})
	startswith(msg, "no-privileged-containers:")
	contains(msg, "\"web\"")
}

test_unprivileged_security_context_allowed if {
	count(admission.deny) == 0 with input as pod({"containers": [{"name": "web", "image": "nginx", "securityContext": {"privileged": false}}]})
}

test_privileged_deployment_template_denied if {
	count(admission.deny) == 1 with input as deployment({"containers": [{"name": "x", "image": "i", "securityContext": {"privileged": true}}]})
}

test_host_network_denied if {
	some msg in admission.deny with input as pod({"hostNetwork": true, "containers": [{"name": "web", "image": "nginx"}]})
	startswith(msg, "no-host-network:")
}

test_other_kinds_ignored if {
	count(admission.deny) == 0 with input as {"request": {"kind": {"kind": "Namespace"}, "object": {"metadata": {"name": "x"}}}}
}

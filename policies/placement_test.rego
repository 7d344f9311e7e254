package mycel.placement_test

import data.mycel.placement

res(cpu, mem) := {"milliCPU": cpu, "memoryBytes": mem, "pods": 110}

# pct is what a node computes for percentFreeAfter: the whole percentage of
# allocatable left after the pod's request.
pct(free, req, alloc) := floor(((free - req) * 100) / alloc)

node(labels, free) := {
	"name": "n", "labels": labels, "allocatable": res(4000, 8000), "free": free, "requests": res(500, 1000),
	"percentFreeAfter": {"cpu": pct(free.milliCPU, 500, 4000), "memory": pct(free.memoryBytes, 1000, 8000)},
}

input_for(labels, free, on_node, in_zone) := {
	"pod": {"metadata": {"name": "web-1"}},
	"node": node(labels, free),
	"requester": "spiffe://mycel.local/node/owner",
	"siblings": {"node": on_node, "zone": in_zone},
}

test_plain_node_accepts if {
	count(placement.deny) == 0 with input as input_for({}, res(4000, 8000), 0, 0)
}

test_unschedulable_label_declines if {
	some msg in placement.deny with input as input_for({"mycel.io/unschedulable": "true"}, res(4000, 8000), 0, 0)
	startswith(msg, "unschedulable:")
}

test_more_free_scores_higher if {
	roomy := placement.score with input as input_for({}, res(4000, 8000), 0, 0)
	busy := placement.score with input as input_for({}, res(1000, 2000), 0, 0)
	roomy > busy
}

test_spread_beats_free_resources if {
	# An empty, busier node beats an idle one that already runs a sibling.
	empty := placement.score with input as input_for({}, res(2000, 4000), 0, 0)
	sibling := placement.score with input as input_for({}, res(4000, 8000), 1, 1)
	empty > sibling
}

test_zone_spread if {
	other_zone := placement.score with input as input_for({}, res(4000, 8000), 0, 0)
	same_zone := placement.score with input as input_for({}, res(4000, 8000), 0, 2)
	other_zone > same_zone
}

test_zero_allocatable_does_not_fail if {
	placement.score == 0 with input as {"node": {"labels": {}, "allocatable": res(0, 0), "free": res(0, 0), "requests": res(0, 0), "percentFreeAfter": {"cpu": 0, "memory": 0}}, "siblings": {"node": 0, "zone": 0}}
}

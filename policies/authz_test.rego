package mycel.authz_test

import data.mycel.authz

req(user, groups, verb, resource, ns, annotations) := {"request": {
	"user": {"username": user, "groups": groups},
	"verb": verb, "apiGroup": "", "resource": resource, "namespace": ns,
	"namespaceAnnotations": annotations,
}}

test_admin_may_do_everything if {
	count(authz.deny) == 0 with input as req("root", ["mycel:admins"], "delete", "namespaces", "", {})
	count(authz.deny) == 0 with input as req("root", ["mycel:admins"], "get", "secrets", "team", {})
}

test_users_read_but_do_not_write if {
	count(authz.deny) == 0 with input as req("bob", [], "list", "pods", "team", {})
	some msg in authz.deny with input as req("bob", [], "create", "pods", "team", {})
	startswith(msg, "namespace-writers:")
	contains(msg, "\"bob\"")
}

test_writers_write_in_their_namespace_only if {
	ann := {"mycel.io/writers": "alice, carol"}
	count(authz.deny) == 0 with input as req("alice", [], "create", "deployments", "team", ann)
	count(authz.deny) == 0 with input as req("carol", [], "get", "secrets", "team", ann)
	count(authz.deny) > 0 with input as req("alice", [], "create", "deployments", "other", {})
	count(authz.deny) > 0 with input as req("alice", [], "create", "namespaces", "", {})
}

test_secrets_are_not_readable_by_everyone if {
	some msg in authz.deny with input as req("bob", [], "get", "secrets", "team", {})
	startswith(msg, "secrets-by-namespace:")
	count(authz.deny) > 0 with input as req("bob", [], "list", "secrets", "", {})
}

test_everyone_may_review_themselves if {
	count(authz.deny) == 0 with input as req("bob", [], "create", "selfsubjectaccessreviews", "", {})
	count(authz.deny) == 0 with input as req("bob", [], "create", "selfsubjectreviews", "", {})
}

test_missing_fields_still_deny if {
	count(authz.deny) > 0 with input as {"request": {"user": {"username": "bob"}, "verb": "create", "resource": "namespaces"}}
}

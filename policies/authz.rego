# Mycel's default authorization policy, evaluated on every API request.
#
# Input: {"request": <AuthzRequest>}:
#   user{username, spiffeID, groups}  who asks (groups: the Organizations of
#                                     the client certificate)
#   verb                              get list watch create update patch
#                                     delete deletecollection
#   apiGroup, resource, subresource   what ("" is the core group)
#   namespace, name                   which ("" when not namespaced / all)
#   namespaceAnnotations              the annotations of the namespace
#                                     (when the request names one)
#
# A request is denied when `deny` is non-empty; each message reaches the user
# in a 403. Start each message with the rule's name.
#
# The default:
#   - members of the group mycel:admins may do everything;
#   - every user of the trust domain may read everything but Secrets;
#   - a namespace's annotation mycel.io/writers ("alice, bob") lets those
#     users write in it and read its Secrets (only admins can write the
#     annotation: namespaces are cluster-scoped);
#   - everyone may ask who they are and what they may do.
package mycel.authz

admin_group := "mycel:admins"

writers_annotation := "mycel.io/writers"

read_verbs := {"get", "list", "watch"}

self_reviews := {"selfsubjectreviews", "selfsubjectaccessreviews", "selfsubjectrulesreviews"}

r := input.request

# Absent fields read as empty, so every rule below is defined for every request.
namespace := object.get(r, "namespace", "")

api_group := object.get(r, "apiGroup", "")

groups := object.get(r.user, "groups", [])

admin if admin_group in groups

granted if {
	namespace != ""
	some u in split(object.get(r, ["namespaceAnnotations", writers_annotation], ""), ",")
	trim_space(u) == r.user.username
}

self_review if r.resource in self_reviews

what := sprintf("%s %s", [r.verb, resource_name]) if namespace == ""

what := sprintf("%s %s in namespace %q", [r.verb, resource_name, namespace]) if namespace != ""

resource_name := r.resource if api_group == ""

resource_name := sprintf("%s.%s", [r.resource, api_group]) if api_group != ""

deny contains msg if {
	not admin
	not granted
	not self_review
	not r.verb in read_verbs
	msg := sprintf("namespace-writers: user %q may not %s: writes need membership of %s or a place in the namespace's %s annotation", [r.user.username, what, admin_group, writers_annotation])
}

deny contains msg if {
	not admin
	not granted
	r.resource == "secrets"
	api_group == ""
	msg := sprintf("secrets-by-namespace: user %q may not %s: Secrets are readable by members of %s and by the namespace's writers", [r.user.username, what, admin_group])
}

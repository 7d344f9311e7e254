package objects

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Validation of the parts of a pod spec a container consumes (environment,
// and later volumes and probes), with kube-apiserver's rules and messages.

// downwardFields are the pod fields env[].valueFrom.fieldRef may name
// (besides metadata.labels['k'] and metadata.annotations['k']).
var downwardFields = []string{"metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations",
	"spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"}

func validateEnv(c *corev1.Container, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, e := range c.Env {
		ep := path.Child("env").Index(i)
		if e.Name == "" {
			errs = append(errs, field.Required(ep.Child("name"), ""))
		}
		for _, msg := range validation.IsEnvVarName(e.Name) {
			errs = append(errs, field.Invalid(ep.Child("name"), e.Name, msg))
		}
		from := e.ValueFrom
		if from == nil {
			continue
		}
		fp := ep.Child("valueFrom")
		n := 0
		if from.FieldRef != nil {
			n++
			errs = append(errs, validateFieldRef(from.FieldRef.FieldPath, fp.Child("fieldRef", "fieldPath"))...)
		}
		if from.ResourceFieldRef != nil {
			n++
			res := from.ResourceFieldRef.Resource
			if !sets.New("limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu", "requests.memory", "requests.ephemeral-storage").Has(res) {
				errs = append(errs, field.NotSupported(fp.Child("resourceFieldRef", "resource"), res, []string{"limits.cpu", "limits.memory", "limits.ephemeral-storage", "requests.cpu", "requests.memory", "requests.ephemeral-storage"}))
			}
			if from.ResourceFieldRef.Divisor.Sign() < 0 {
				errs = append(errs, field.Invalid(fp.Child("resourceFieldRef", "divisor"), from.ResourceFieldRef.Divisor.String(), "must be positive"))
			}
		}
		if r := from.ConfigMapKeyRef; r != nil {
			n++
			errs = append(errs, validateKeyRef(r.Name, r.Key, fp.Child("configMapKeyRef"))...)
		}
		if r := from.SecretKeyRef; r != nil {
			n++
			errs = append(errs, validateKeyRef(r.Name, r.Key, fp.Child("secretKeyRef"))...)
		}
		switch {
		case n == 0:
			errs = append(errs, field.Invalid(fp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
		case n > 1:
			errs = append(errs, field.Invalid(fp, "", "may not have more than one field specified at a time"))
		case e.Value != "":
			errs = append(errs, field.Invalid(fp, "", "may not be specified when `value` is not empty"))
		}
	}
	for i, from := range c.EnvFrom {
		fp := path.Child("envFrom").Index(i)
		if from.Prefix != "" {
			for _, msg := range validation.IsEnvVarName(from.Prefix) {
				errs = append(errs, field.Invalid(fp.Child("prefix"), from.Prefix, msg))
			}
		}
		switch {
		case (from.ConfigMapRef == nil) == (from.SecretRef == nil):
			errs = append(errs, field.Invalid(fp, "", "must specify exactly one of: `configMapRef` or `secretRef`"))
		case from.ConfigMapRef != nil && from.ConfigMapRef.Name == "":
			errs = append(errs, field.Required(fp.Child("configMapRef", "name"), ""))
		case from.SecretRef != nil && from.SecretRef.Name == "":
			errs = append(errs, field.Required(fp.Child("secretRef", "name"), ""))
		}
	}
	return errs
}

func validateKeyRef(name, key string, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	if name == "" {
		errs = append(errs, field.Required(path.Child("name"), ""))
	}
	if key == "" {
		return append(errs, field.Required(path.Child("key"), ""))
	}
	return append(errs, validateDataKey(path.Child("key"), key)...)
}

func validateFieldRef(fieldPath string, path *field.Path) field.ErrorList {
	for _, prefix := range []string{"metadata.labels['", "metadata.annotations['"} {
		if key, ok := strings.CutPrefix(fieldPath, prefix); ok && strings.HasSuffix(key, "']") && len(key) > 2 {
			return nil
		}
	}
	if sets.New(downwardFields...).Has(fieldPath) {
		return nil
	}
	return field.ErrorList{field.NotSupported(path, fieldPath, downwardFields)}
}

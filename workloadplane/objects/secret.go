package objects

import (
	"encoding/json"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// redacted stands for a Secret's value in error messages.
const redacted = "<secret contents redacted>"

// secretResource is core/v1 secrets. Their documents are sealed in the
// store (Config.Sealer): a node's store file alone does not reveal them.
func secretResource() *Resource {
	return &Resource{
		GroupVersion: corev1.SchemeGroupVersion, Plural: "secrets", Singular: "secret", Kind: "Secret", Namespaced: true,
		install: corev1.AddToScheme,
		newObj:  func() Object { return &corev1.Secret{} },
		newList: func() runtime.Object { return &corev1.SecretList{} },
		fields:  func(o Object) fields.Set { return fields.Set{"type": string(o.(*corev1.Secret).Type)} },
		defaults: func(o Object) {
			s := o.(*corev1.Secret)
			if s.Type == "" {
				s.Type = corev1.SecretTypeOpaque
			}
			// As kube-apiserver's conversion does: stringData is a
			// write-only convenience merged over data.
			if len(s.StringData) > 0 {
				if s.Data == nil {
					s.Data = map[string][]byte{}
				}
				for k, v := range s.StringData {
					s.Data[k] = []byte(v)
				}
				s.StringData = nil
			}
		},
		validate: validateSecret,
		sealed:   true,
		columns: []metav1.TableColumnDefinition{
			nameCol(),
			col("Type", "string", "The type of the secret.", 0),
			col("Data", "string", "The number of entries in the secret.", 0),
			ageCol(),
		},
		cells: func(o Object, now time.Time) []any {
			s := o.(*corev1.Secret)
			return []any{s.Name, string(s.Type), int64(len(s.Data)), age(o, now)}
		},
	}
}

// validateSecret checks a Secret as Kubernetes does, including the keys each
// built-in type requires; values never appear in the errors.
func validateSecret(obj, old Object) field.ErrorList {
	s := obj.(*corev1.Secret)
	errs := validateMeta(obj, old, true, apivalidation.NameIsDNSSubdomain)
	data := field.NewPath("data")
	size := 0
	for k, v := range s.Data {
		errs = append(errs, validateDataKey(data.Key(k), k)...)
		size += len(v)
	}
	if size > MaxDataSize {
		errs = append(errs, field.TooLong(data, "", MaxDataSize))
	}
	jsonKey := func(key string) {
		v, ok := s.Data[key]
		if !ok {
			errs = append(errs, field.Required(data.Key(key), ""))
			return
		}
		if err := json.Unmarshal(v, &map[string]any{}); err != nil {
			errs = append(errs, field.Invalid(data.Key(key), redacted, err.Error()))
		}
	}
	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		if s.Annotations[corev1.ServiceAccountNameKey] == "" {
			errs = append(errs, field.Required(metaPath.Child("annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeDockercfg:
		jsonKey(corev1.DockerConfigKey)
	case corev1.SecretTypeDockerConfigJson:
		jsonKey(corev1.DockerConfigJsonKey)
	case corev1.SecretTypeBasicAuth:
		_, user := s.Data[corev1.BasicAuthUsernameKey]
		_, pass := s.Data[corev1.BasicAuthPasswordKey]
		if !user && !pass {
			errs = append(errs, field.Required(data.Key(corev1.BasicAuthUsernameKey), ""), field.Required(data.Key(corev1.BasicAuthPasswordKey), ""))
		}
	case corev1.SecretTypeSSHAuth:
		if len(s.Data[corev1.SSHAuthPrivateKey]) == 0 {
			errs = append(errs, field.Required(data.Key(corev1.SSHAuthPrivateKey), ""))
		}
	case corev1.SecretTypeTLS:
		for _, k := range []string{corev1.TLSCertKey, corev1.TLSPrivateKeyKey} {
			if _, ok := s.Data[k]; !ok {
				errs = append(errs, field.Required(data.Key(k), ""))
			}
		}
	}
	if old != nil {
		os := old.(*corev1.Secret)
		if s.Type != os.Type {
			errs = append(errs, field.Invalid(field.NewPath("type"), s.Type, apivalidation.FieldImmutableErrorMsg))
		}
		errs = append(errs, validateImmutableData(os.Immutable, s.Immutable, maps.EqualFunc(s.Data, os.Data, func(a, b []byte) bool { return equality.Semantic.DeepEqual(a, b) }))...)
	}
	return errs
}

package objects

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apiextensions-apiserver/pkg/registry/customresource/tableconvertor"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"k8s.io/apiserver/pkg/registry/rest"
	"k8s.io/client-go/util/jsonpath"
)

// Custom resources: every served version of every CRD is a Resource of
// unstructured objects, typed by the version's structural schema with
// apiextensions-apiserver's own code: unknown fields pruned, defaults
// applied, the OpenAPI schema and x-kubernetes-validations (CEL) enforced,
// Tables from additionalPrinterColumns. All versions of a CRD share one
// store prefix; conversion is None (an object read through another version
// only changes its apiVersion).

// customResources returns a Resource for each served version of crd.
func customResources(crd *apiextensionsv1.CustomResourceDefinition) ([]*Resource, error) {
	var out []*Resource
	for i := range crd.Spec.Versions {
		if v := &crd.Spec.Versions[i]; v.Served {
			r, err := customResource(crd, v)
			if err != nil {
				return nil, fmt.Errorf("CRD %s version %s: %w", crd.Name, v.Name, err)
			}
			out = append(out, r)
		}
	}
	return out, nil
}

func customResource(crd *apiextensionsv1.CustomResourceDefinition, v *apiextensionsv1.CustomResourceDefinitionVersion) (*Resource, error) {
	if v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
		return nil, fmt.Errorf("no schema")
	}
	var props apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v.Schema.OpenAPIV3Schema, &props, nil); err != nil {
		return nil, err
	}
	st, err := structuralschema.NewStructural(&props)
	if err != nil {
		return nil, err
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(&props)
	if err != nil {
		return nil, err
	}
	rules := cel.NewValidator(st, true, celconfig.PerCallLimit)
	columns := v.AdditionalPrinterColumns
	if len(columns) == 0 {
		columns = []apiextensionsv1.CustomResourceColumnDefinition{{Name: "Age", Type: "date", JSONPath: ".metadata.creationTimestamp"}}
	}
	tc, err := tableconvertor.New(columns)
	if err != nil {
		return nil, err
	}
	names := crd.Spec.Names
	gv := schema.GroupVersion{Group: crd.Spec.Group, Version: v.Name}
	namespaced := crd.Spec.Scope == apiextensionsv1.NamespaceScoped
	r := &Resource{
		GroupVersion: gv, Plural: names.Plural, Singular: names.Singular, Kind: names.Kind, Namespaced: namespaced,
		ShortNames: names.ShortNames, Categories: names.Categories,
		storage: names.Plural + "." + crd.Spec.Group,
		custom:  true,
		newList: func() runtime.Object {
			l := &unstructured.UnstructuredList{}
			l.SetGroupVersionKind(gv.WithKind(names.ListKind))
			return l
		},
		defaults: func(o Object) {
			u := o.(*unstructured.Unstructured)
			structuralpruning.Prune(u.Object, st, true)
			structuraldefaulting.Default(u.Object, st)
		},
		unknownFields: func(o Object) []string {
			return structuralpruning.PruneWithOptions(o.(*unstructured.Unstructured).DeepCopy().Object, st, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
		},
		generation: true,
		validate: func(obj, old Object) field.ErrorList {
			errs := validateMeta(obj, old, namespaced, apivalidation.NameIsDNSSubdomain)
			u := obj.(*unstructured.Unstructured)
			var prev any
			if old == nil {
				errs = append(errs, apiservervalidation.ValidateCustomResource(nil, u.Object, validator)...)
			} else {
				prev = old.(*unstructured.Unstructured).Object
				errs = append(errs, apiservervalidation.ValidateCustomResourceUpdate(nil, u.Object, prev, validator)...)
			}
			if rules != nil {
				ruleErrs, _ := rules.Validate(context.Background(), nil, st, u.Object, prev, celconfig.RuntimeCELCostBudget)
				errs = append(errs, ruleErrs...)
			}
			return errs
		},
		columns: customColumns(tc),
		cells: func(o Object, _ time.Time) []any {
			t, err := tc.ConvertToTable(context.Background(), o, nil)
			if err != nil || len(t.Rows) != 1 {
				return []any{o.GetName()}
			}
			return t.Rows[0].Cells
		},
	}
	r.newObj = func() Object {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(r.GVK())
		return u
	}
	if len(v.SelectableFields) > 0 {
		fs, err := selectableFields(v.SelectableFields)
		if err != nil {
			return nil, err
		}
		r.fields = fs
	}
	if crd.DeletionTimestamp != nil {
		r.terminating = fmt.Sprintf("create not allowed while custom resource definition %s is terminating", crd.Name)
	}
	if s := v.Subresources; s != nil {
		if s.Status != nil {
			r.Subresources = append(r.Subresources, "status")
		}
		if s.Scale != nil {
			r.Subresources = append(r.Subresources, "scale")
			r.scale = customScale(s.Scale)
		}
	}
	return r, nil
}

// customColumns are the Table columns of a custom resource, as its
// printer columns' convertor defines them.
func customColumns(tc rest.TableConvertor) []metav1.TableColumnDefinition {
	t, err := tc.ConvertToTable(context.Background(), &unstructured.UnstructuredList{}, nil)
	if err != nil {
		return []metav1.TableColumnDefinition{nameCol()}
	}
	return t.ColumnDefinitions
}

// jsonPath splits ".spec.replicas" into its fields.
func jsonPath(p string) []string { return strings.Split(strings.TrimPrefix(p, "."), ".") }

// selectableFields are the field selector values of a CRD version's
// selectableFields, as apiextensions-apiserver's strategy derives them
// (its registry package would bring etcd's client along): each JSONPath's
// one scalar, printed, or "" where it is missing.
func selectableFields(sfs []apiextensionsv1.SelectableField) (func(Object) fields.Set, error) {
	type path struct {
		name string
		jp   *jsonpath.JSONPath
	}
	var paths []path
	for _, sf := range sfs {
		jp := jsonpath.New("selectableField")
		jp.AllowMissingKeys(true)
		if err := jp.Parse("{" + sf.JSONPath + "}"); err != nil {
			return nil, fmt.Errorf("selectableField %s: %w", sf.JSONPath, err)
		}
		paths = append(paths, path{strings.TrimPrefix(sf.JSONPath, "."), jp})
	}
	return func(o Object) fields.Set {
		set := fields.Set{}
		content := o.(*unstructured.Unstructured).UnstructuredContent()
		for _, p := range paths {
			set[p.name] = ""
			if res, err := p.jp.FindResults(content); err == nil && len(res) == 1 && len(res[0]) == 1 {
				if v := res[0][0].Interface(); v != nil {
					set[p.name] = fmt.Sprint(v)
				}
			}
		}
		return set
	}, nil
}

// customScale reads and writes a custom resource's replicas at the paths
// its CRD names.
func customScale(sc *apiextensionsv1.CustomResourceSubresourceScale) *scaling {
	return &scaling{
		get: func(o Object) (int32, int32, *metav1.LabelSelector) {
			u := o.(*unstructured.Unstructured).Object
			spec, _, _ := unstructured.NestedInt64(u, jsonPath(sc.SpecReplicasPath)...)
			status, _, _ := unstructured.NestedInt64(u, jsonPath(sc.StatusReplicasPath)...)
			var sel *metav1.LabelSelector
			if sc.LabelSelectorPath != nil {
				if s, _, _ := unstructured.NestedString(u, jsonPath(*sc.LabelSelectorPath)...); s != "" {
					sel, _ = metav1.ParseToLabelSelector(s)
				}
			}
			return int32(spec), int32(status), sel
		},
		set: func(o Object, n int32) {
			unstructured.SetNestedField(o.(*unstructured.Unstructured).Object, int64(n), jsonPath(sc.SpecReplicasPath)...)
		},
	}
}

// ServeCustom makes the served resources the built-in ones plus every
// served version of crds. A CRD whose kind an older CRD (or a built-in
// resource) of its group already has is left out, and said so in the
// returned error; the rest are served.
func (o *Objects) ServeCustom(crds []apiextensionsv1.CustomResourceDefinition) error {
	base := o.builtin
	var custom []*Resource
	var served []*apiextensionsv1.CustomResourceDefinition
	var problems []string
	taken := map[string]string{}
	for _, r := range base.all {
		taken[r.GroupVersion.Group+"/"+r.Kind] = "built-in"
	}
	// The older CRD keeps a kind, as the CRD controller decides.
	slices.SortFunc(crds, func(a, b apiextensionsv1.CustomResourceDefinition) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	for i := range crds {
		crd := &crds[i]
		rs, err := customResources(crd)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		key := crd.Spec.Group + "/" + crd.Spec.Names.Kind
		if other, ok := taken[key]; ok {
			problems = append(problems, fmt.Sprintf("CRD %s: kind %s is already served by %s", crd.Name, key, other))
			continue
		}
		taken[key] = "CRD " + crd.Name
		custom = append(custom, rs...)
		served = append(served, crd)
	}
	reg, err := base.with(custom, served)
	if err != nil {
		return err
	}
	o.reg.Store(reg)
	if len(problems) > 0 {
		return fmt.Errorf("objects: %s", strings.Join(problems, "; "))
	}
	return nil
}

// ServedCRDs returns the CRDs whose resources are served, and a number that
// changes whenever they do.
func (o *Objects) ServedCRDs() ([]*apiextensionsv1.CustomResourceDefinition, uint64) {
	reg := o.reg.Load()
	return reg.crds, reg.gen
}

// ServeCustomResources serves the CRDs in the store now and whenever they
// change, until ctx is done.
func (o *Objects) ServeCustomResources(ctx context.Context, log *slog.Logger) {
	kick := make(chan struct{}, 1)
	go o.Notify(ctx, "customresourcedefinitions", kick)
	for {
		if err := o.SyncCustom(ctx); err != nil {
			log.Warn("serve custom resources", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
	}
}

// SyncCustom serves the CRDs in the store now (ServeCustom).
func (o *Objects) SyncCustom(ctx context.Context) error {
	var crds apiextensionsv1.CustomResourceDefinitionList
	if err := o.List(ctx, &crds, "", nil); err != nil {
		return err
	}
	return o.ServeCustom(crds.Items)
}

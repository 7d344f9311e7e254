package objects

import (
	"fmt"
	"path/filepath"
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Defaults and validation of the parts of a pod spec a container consumes
// (environment, volumes and their mounts), with kube-apiserver's rules and
// messages.

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

// defaultVolumes applies kube-apiserver's volume defaults: file mode 0644.
func defaultVolumes(s *corev1.PodSpec) {
	mode := func(m **int32) {
		if *m == nil {
			*m = new(corev1.ConfigMapVolumeSourceDefaultMode)
		}
	}
	for i := range s.Volumes {
		v := &s.Volumes[i].VolumeSource
		switch {
		case v.ConfigMap != nil:
			mode(&v.ConfigMap.DefaultMode)
		case v.Secret != nil:
			mode(&v.Secret.DefaultMode)
		case v.DownwardAPI != nil:
			mode(&v.DownwardAPI.DefaultMode)
		case v.Projected != nil:
			mode(&v.Projected.DefaultMode)
		}
	}
}

// volumeSources counts the sources a volume names, and says whether Mycel
// supports the one it names.
func volumeSources(v *corev1.VolumeSource) (n int, supported bool) {
	rv := reflect.ValueOf(v).Elem()
	for i := range rv.NumField() {
		if !rv.Field(i).IsNil() {
			n++
		}
	}
	return n, v.EmptyDir != nil || v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil
}

func validateVolumes(s *corev1.PodSpec, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	for i := range s.Volumes {
		v := &s.Volumes[i]
		vp := path.Child("volumes").Index(i)
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			errs = append(errs, field.Invalid(vp.Child("name"), v.Name, msg))
		}
		if names.Has(v.Name) {
			errs = append(errs, field.Duplicate(vp.Child("name"), v.Name))
		}
		names.Insert(v.Name)
		n, supported := volumeSources(&v.VolumeSource)
		switch {
		case n == 0:
			errs = append(errs, field.Required(vp, "must specify a volume type"))
			continue
		case n > 1:
			errs = append(errs, field.Forbidden(vp, "may not specify more than 1 volume type"))
			continue
		case !supported:
			errs = append(errs, field.Forbidden(vp, "this volume type is not supported by Mycel yet: use emptyDir, configMap, secret, downwardAPI or projected"))
			continue
		}
		switch src := &v.VolumeSource; {
		case src.EmptyDir != nil:
			if m := src.EmptyDir.Medium; m != corev1.StorageMediumDefault && m != corev1.StorageMediumMemory {
				errs = append(errs, field.NotSupported(vp.Child("emptyDir", "medium"), m, []string{"", "Memory"}))
			}
		case src.ConfigMap != nil:
			if src.ConfigMap.Name == "" {
				errs = append(errs, field.Required(vp.Child("configMap", "name"), ""))
			}
			errs = append(errs, validateItems(src.ConfigMap.Items, src.ConfigMap.DefaultMode, vp.Child("configMap"))...)
		case src.Secret != nil:
			if src.Secret.SecretName == "" {
				errs = append(errs, field.Required(vp.Child("secret", "secretName"), ""))
			}
			errs = append(errs, validateItems(src.Secret.Items, src.Secret.DefaultMode, vp.Child("secret"))...)
		case src.DownwardAPI != nil:
			errs = append(errs, validateMode(src.DownwardAPI.DefaultMode, vp.Child("downwardAPI", "defaultMode"))...)
			errs = append(errs, validateDownwardItems(src.DownwardAPI.Items, vp.Child("downwardAPI", "items"))...)
		case src.Projected != nil:
			pp := vp.Child("projected")
			errs = append(errs, validateMode(src.Projected.DefaultMode, pp.Child("defaultMode"))...)
			for j, ps := range src.Projected.Sources {
				sp := pp.Child("sources").Index(j)
				switch {
				case ps.ServiceAccountToken != nil, ps.ClusterTrustBundle != nil, ps.PodCertificate != nil:
					errs = append(errs, field.Forbidden(sp, "only configMap, secret and downwardAPI projections are supported by Mycel yet"))
				case ps.ConfigMap != nil:
					if ps.ConfigMap.Name == "" {
						errs = append(errs, field.Required(sp.Child("configMap", "name"), ""))
					}
					errs = append(errs, validateItems(ps.ConfigMap.Items, nil, sp.Child("configMap"))...)
				case ps.Secret != nil:
					if ps.Secret.Name == "" {
						errs = append(errs, field.Required(sp.Child("secret", "name"), ""))
					}
					errs = append(errs, validateItems(ps.Secret.Items, nil, sp.Child("secret"))...)
				case ps.DownwardAPI != nil:
					errs = append(errs, validateDownwardItems(ps.DownwardAPI.Items, sp.Child("downwardAPI", "items"))...)
				default:
					errs = append(errs, field.Required(sp, "must specify a projection source"))
				}
			}
		}
	}
	for i := range s.InitContainers {
		errs = append(errs, validateMounts(&s.InitContainers[i], names, path.Child("initContainers").Index(i))...)
	}
	for i := range s.Containers {
		errs = append(errs, validateMounts(&s.Containers[i], names, path.Child("containers").Index(i))...)
	}
	return errs
}

func validateMode(mode *int32, path *field.Path) field.ErrorList {
	if mode != nil && (*mode < 0 || *mode > 0o777) {
		return field.ErrorList{field.Invalid(path, *mode, "must be a number between 0 and 0777 (octal), both inclusive")}
	}
	return nil
}

// validatePath checks a path inside a volume: relative, no '..' element,
// not starting with '..' (those names are the volume's own).
func validatePath(p string, path *field.Path) field.ErrorList {
	switch {
	case p == "":
		return field.ErrorList{field.Required(path, "")}
	case !filepath.IsLocal(p) || strings.HasPrefix(p, ".."):
		return field.ErrorList{field.Invalid(path, p, "must be a relative path without '..' and may not start with '..'")}
	}
	return nil
}

func validateItems(items []corev1.KeyToPath, defaultMode *int32, path *field.Path) field.ErrorList {
	errs := validateMode(defaultMode, path.Child("defaultMode"))
	for i, it := range items {
		ip := path.Child("items").Index(i)
		if it.Key == "" {
			errs = append(errs, field.Required(ip.Child("key"), ""))
		}
		errs = append(errs, validatePath(it.Path, ip.Child("path"))...)
		errs = append(errs, validateMode(it.Mode, ip.Child("mode"))...)
	}
	return errs
}

func validateDownwardItems(items []corev1.DownwardAPIVolumeFile, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, it := range items {
		ip := path.Index(i)
		errs = append(errs, validatePath(it.Path, ip.Child("path"))...)
		errs = append(errs, validateMode(it.Mode, ip.Child("mode"))...)
		switch {
		case (it.FieldRef == nil) == (it.ResourceFieldRef == nil):
			errs = append(errs, field.Invalid(ip, "", "must specify exactly one of: `fieldRef` or `resourceFieldRef`"))
		case it.FieldRef != nil && strings.HasPrefix(it.FieldRef.FieldPath, "status."):
			errs = append(errs, field.NotSupported(ip.Child("fieldRef", "fieldPath"), it.FieldRef.FieldPath, []string{"metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations"}))
		case it.FieldRef != nil:
			errs = append(errs, validateFieldRef(it.FieldRef.FieldPath, ip.Child("fieldRef", "fieldPath"))...)
		case it.ResourceFieldRef.ContainerName == "":
			errs = append(errs, field.Required(ip.Child("resourceFieldRef", "containerName"), "a downward API volume names the container whose resources it shows"))
		}
	}
	return errs
}

func validateMounts(c *corev1.Container, volumes sets.Set[string], path *field.Path) field.ErrorList {
	var errs field.ErrorList
	paths := sets.New[string]()
	for i, m := range c.VolumeMounts {
		mp := path.Child("volumeMounts").Index(i)
		if !volumes.Has(m.Name) {
			errs = append(errs, field.NotFound(mp.Child("name"), m.Name))
		}
		switch {
		case m.MountPath == "":
			errs = append(errs, field.Required(mp.Child("mountPath"), ""))
		case paths.Has(m.MountPath):
			errs = append(errs, field.Invalid(mp.Child("mountPath"), m.MountPath, "must be unique"))
		}
		paths.Insert(m.MountPath)
		if m.SubPath != "" && m.SubPathExpr != "" {
			errs = append(errs, field.Invalid(mp.Child("subPathExpr"), m.SubPathExpr, "subPathExpr and subPath are mutually exclusive"))
		}
		if m.SubPath != "" && (!filepath.IsLocal(m.SubPath)) {
			errs = append(errs, field.Invalid(mp.Child("subPath"), m.SubPath, "must be a relative path without '..'"))
		}
		if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
			errs = append(errs, field.Forbidden(mp.Child("mountPropagation"), "mount propagation is not supported by Mycel"))
		}
	}
	return errs
}

// defaultProbe applies kube-apiserver's probe defaults.
func defaultProbe(p *corev1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	defaultHTTPGet(p.HTTPGet)
}

func defaultHTTPGet(g *corev1.HTTPGetAction) {
	if g == nil {
		return
	}
	if g.Path == "" {
		g.Path = "/"
	}
	if g.Scheme == "" {
		g.Scheme = corev1.URISchemeHTTP
	}
}

func validateProbesAndHooks(c *corev1.Container, path *field.Path, init bool) field.ErrorList {
	var errs field.ErrorList
	if init {
		if c.RestartPolicy != nil {
			errs = append(errs, field.Forbidden(path.Child("restartPolicy"), "sidecar containers (init containers with restartPolicy) are not supported by Mycel yet"))
		}
		for name, set := range map[string]bool{"livenessProbe": c.LivenessProbe != nil, "readinessProbe": c.ReadinessProbe != nil,
			"startupProbe": c.StartupProbe != nil, "lifecycle": c.Lifecycle != nil} {
			if set {
				errs = append(errs, field.Forbidden(path.Child(name), "may not be set for init containers"))
			}
		}
		return errs
	}
	if c.RestartPolicy != nil {
		errs = append(errs, field.Forbidden(path.Child("restartPolicy"), "may not be set for non-init containers"))
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
	}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}} {
		if p.probe == nil {
			continue
		}
		pp := path.Child(p.name)
		pr := p.probe
		errs = append(errs, validateHandler(pr.Exec, pr.HTTPGet, pr.TCPSocket, pr.GRPC, nil, false, c, pp)...)
		for _, f := range []struct {
			name string
			v    int32
			min  int32
		}{{"initialDelaySeconds", pr.InitialDelaySeconds, 0}, {"timeoutSeconds", pr.TimeoutSeconds, 1}, {"periodSeconds", pr.PeriodSeconds, 1},
			{"successThreshold", pr.SuccessThreshold, 1}, {"failureThreshold", pr.FailureThreshold, 1}} {
			if f.v < f.min {
				errs = append(errs, field.Invalid(pp.Child(f.name), f.v, fmt.Sprintf("must be greater than or equal to %d", f.min)))
			}
		}
		if p.name != "readinessProbe" && pr.SuccessThreshold != 1 {
			errs = append(errs, field.Invalid(pp.Child("successThreshold"), pr.SuccessThreshold, "must be 1"))
		}
		if pr.TerminationGracePeriodSeconds != nil && p.name == "readinessProbe" {
			errs = append(errs, field.Invalid(pp.Child("terminationGracePeriodSeconds"), *pr.TerminationGracePeriodSeconds, "must not be set for readinessProbes"))
		}
	}
	if l := c.Lifecycle; l != nil {
		for name, h := range map[string]*corev1.LifecycleHandler{"postStart": l.PostStart, "preStop": l.PreStop} {
			if h != nil {
				errs = append(errs, validateHandler(h.Exec, h.HTTPGet, h.TCPSocket, nil, h.Sleep, true, c, path.Child("lifecycle", name))...)
			}
		}
	}
	return errs
}

// validateHandler checks that a probe or hook has exactly one handler and
// that its ports name the container's.
func validateHandler(exec *corev1.ExecAction, httpGet *corev1.HTTPGetAction, tcp *corev1.TCPSocketAction, grpc *corev1.GRPCAction, sleep *corev1.SleepAction, hook bool, c *corev1.Container, path *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	if exec != nil {
		n++
		if len(exec.Command) == 0 {
			errs = append(errs, field.Required(path.Child("exec", "command"), ""))
		}
	}
	if httpGet != nil {
		n++
		errs = append(errs, validatePort(httpGet.Port, c, path.Child("httpGet", "port"))...)
		if s := httpGet.Scheme; s != corev1.URISchemeHTTP && s != corev1.URISchemeHTTPS {
			errs = append(errs, field.NotSupported(path.Child("httpGet", "scheme"), s, []string{"HTTP", "HTTPS"}))
		}
	}
	if tcp != nil {
		n++
		if hook {
			errs = append(errs, field.Forbidden(path.Child("tcpSocket"), "tcpSocket is not supported as a lifecycle handler (it is deprecated): use exec or httpGet"))
		}
		errs = append(errs, validatePort(tcp.Port, c, path.Child("tcpSocket", "port"))...)
	}
	if grpc != nil {
		n++
		for _, msg := range validation.IsValidPortNum(int(grpc.Port)) {
			errs = append(errs, field.Invalid(path.Child("grpc", "port"), grpc.Port, msg))
		}
	}
	if sleep != nil {
		n++
		if sleep.Seconds < 0 {
			errs = append(errs, field.Invalid(path.Child("sleep", "seconds"), sleep.Seconds, "must be greater than or equal to 0"))
		}
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(path, "must specify a handler type"))
	case n > 1:
		errs = append(errs, field.Forbidden(path, "may not specify more than 1 handler type"))
	}
	return errs
}

func validatePort(port intstr.IntOrString, c *corev1.Container, path *field.Path) field.ErrorList {
	if port.Type == intstr.Int {
		var errs field.ErrorList
		for _, msg := range validation.IsValidPortNum(port.IntValue()) {
			errs = append(errs, field.Invalid(path, port.IntValue(), msg))
		}
		return errs
	}
	for _, msg := range validation.IsValidPortName(port.StrVal) {
		return field.ErrorList{field.Invalid(path, port.StrVal, msg)}
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return nil
		}
	}
	return field.ErrorList{field.Invalid(path, port.StrVal, "must be the name of a port of the container")}
}

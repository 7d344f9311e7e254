package agent

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// Pod volumes live in per-pod directories on the host, bind-mounted into
// the pod's containers:
//
//	VolumeDir/<pod UID>/<volume>   emptyDir
//	MemoryDir/<pod UID>/<volume>   configMap, secret, downwardAPI, projected,
//	                               and emptyDir with medium Memory
//
// Projected content (everything but emptyDir) is written as kubelet's
// AtomicWriter does: the files go to a fresh hidden directory, a "..data"
// symlink is swapped to it in one rename, and each top-level entry is a
// symlink through "..data". A container sees an update all at once, and a
// subPath mount (bound to the file, not the link) keeps what it saw when it
// started, as in Kubernetes.

// dataLink is the symlink to the current content of a projected volume.
const dataLink = "..data"

// subPaths is the directory, beside a pod's volumes, of the copies subPath
// mounts of projected volumes bind.
const subPaths = "..subpaths"

// copySubPath copies a file or directory of projected content to dst,
// replacing what was there, and returns dst.
func copySubPath(src, dst string) (string, error) {
	if err := os.RemoveAll(dst); err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	// Walk resolved content (no symlinks below the content directory), keeping
	// each file's mode.
	return dst, filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if err := os.WriteFile(to, data, fi.Mode().Perm()); err != nil {
			return err
		}
		return os.Chmod(to, fi.Mode().Perm())
	})
}

// file is one file of a projected volume.
type file struct {
	data []byte
	mode os.FileMode
}

// volumeDir is where volume v of pod lives on the host.
func (a *Agent) volumeDir(pod *corev1.Pod, v *corev1.Volume) (string, error) {
	root := a.cfg.MemoryDir
	if v.EmptyDir != nil && v.EmptyDir.Medium != corev1.StorageMediumMemory {
		root = a.cfg.VolumeDir
	}
	if root == "" {
		return "", errors.New("this node has no directory for pod volumes (agent.Config.VolumeDir, MemoryDir)")
	}
	return filepath.Join(root, string(pod.UID), v.Name), nil
}

// syncVolumes makes every volume of pod exist with its current content. A
// volume whose source is missing fails with kubelet's message and leaves
// the others done.
func (a *Agent) syncVolumes(src *podSync) error {
	pod := src.pod
	var errs []error
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		if err := a.syncVolume(src, v); err != nil {
			errs = append(errs, fmt.Errorf("MountVolume.SetUp failed for volume %q : %w", v.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (a *Agent) syncVolume(src *podSync, v *corev1.Volume) error {
	dir, err := a.volumeDir(src.pod, v)
	if err != nil {
		return err
	}
	if v.EmptyDir != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return os.Chmod(dir, 0o777) // as kubelet: any container user may write
	}
	files, err := a.projection(src, v)
	if err != nil {
		return err
	}
	sum := digest(files)
	a.mu.Lock()
	same := a.volumes[dir] == sum
	a.mu.Unlock()
	if same {
		return nil
	}
	if err := writeAtomic(dir, files); err != nil {
		return err
	}
	a.mu.Lock()
	a.volumes[dir] = sum
	a.mu.Unlock()
	return nil
}

// projection computes the files of a configMap, secret, downwardAPI or
// projected volume.
func (a *Agent) projection(src *podSync, v *corev1.Volume) (map[string]file, error) {
	files := map[string]file{}
	switch {
	case v.ConfigMap != nil:
		return files, a.project(files, src, "ConfigMap", v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.DefaultMode, v.ConfigMap.Optional)
	case v.Secret != nil:
		return files, a.project(files, src, "Secret", v.Secret.SecretName, v.Secret.Items, v.Secret.DefaultMode, v.Secret.Optional)
	case v.DownwardAPI != nil:
		return files, a.projectDownward(files, src, v.DownwardAPI.Items, v.DownwardAPI.DefaultMode)
	case v.Projected != nil:
		for _, s := range v.Projected.Sources {
			var err error
			switch {
			case s.ConfigMap != nil:
				err = a.project(files, src, "ConfigMap", s.ConfigMap.Name, s.ConfigMap.Items, v.Projected.DefaultMode, s.ConfigMap.Optional)
			case s.Secret != nil:
				err = a.project(files, src, "Secret", s.Secret.Name, s.Secret.Items, v.Projected.DefaultMode, s.Secret.Optional)
			case s.DownwardAPI != nil:
				err = a.projectDownward(files, src, s.DownwardAPI.Items, v.Projected.DefaultMode)
			default:
				err = errors.New("only configMap, secret and downwardAPI projections are supported by Mycel yet")
			}
			if err != nil {
				return nil, err
			}
		}
		return files, nil
	}
	return nil, errors.New("volume type not supported by Mycel yet")
}

// project adds the keys of a ConfigMap or Secret: all of them as files
// named by key, or only items, at their paths.
func (a *Agent) project(files map[string]file, src *podSync, kind, name string, items []corev1.KeyToPath, defaultMode *int32, optional *bool) error {
	var data map[string][]byte
	var err error
	if kind == "ConfigMap" {
		data, err = src.configMapData(name)
	} else {
		data, err = src.secretData(name)
	}
	if err != nil {
		return err
	}
	if data == nil {
		if isTrue(optional) {
			return nil
		}
		return fmt.Errorf("%s %q not found", strings.ToLower(kind), name)
	}
	mode := fileMode(nil, defaultMode)
	if len(items) == 0 {
		for k, v := range data {
			files[k] = file{data: v, mode: mode}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if isTrue(optional) {
				continue
			}
			return fmt.Errorf("configmap references non-existent config key: %s", it.Key)
		}
		if !filepath.IsLocal(it.Path) {
			return fmt.Errorf("item path %q must be relative and may not contain '..'", it.Path)
		}
		files[it.Path] = file{data: v, mode: fileMode(it.Mode, defaultMode)}
	}
	return nil
}

func (a *Agent) projectDownward(files map[string]file, src *podSync, items []corev1.DownwardAPIVolumeFile, defaultMode *int32) error {
	for _, it := range items {
		if !filepath.IsLocal(it.Path) {
			return fmt.Errorf("item path %q must be relative and may not contain '..'", it.Path)
		}
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = src.fieldRef(it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			var c *corev1.Container
			for i := range src.pod.Spec.Containers {
				if src.pod.Spec.Containers[i].Name == it.ResourceFieldRef.ContainerName {
					c = &src.pod.Spec.Containers[i]
				}
			}
			if c == nil {
				return fmt.Errorf("resourceFieldRef names container %q, which the pod does not have", it.ResourceFieldRef.ContainerName)
			}
			v, err = a.resourceFieldRef(src.ctx, c, it.ResourceFieldRef)
		}
		if err != nil {
			return err
		}
		files[it.Path] = file{data: []byte(v), mode: fileMode(it.Mode, defaultMode)}
	}
	return nil
}

// fileMode is an item's mode, else the volume's default, else 0644.
func fileMode(mode, defaultMode *int32) os.FileMode {
	switch {
	case mode != nil:
		return os.FileMode(*mode) & os.ModePerm
	case defaultMode != nil:
		return os.FileMode(*defaultMode) & os.ModePerm
	}
	return 0o644
}

func digest(files map[string]file) string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	h := sha256.New()
	for _, p := range paths {
		fmt.Fprintf(h, "%s\x00%o\x00%d\x00", p, files[p].mode, len(files[p].data))
		h.Write(files[p].data)
	}
	return string(h.Sum(nil))
}

// writeAtomic replaces the content of dir with files in one rename of its
// "..data" link.
func writeAtomic(dir string, files map[string]file) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	content, err := os.MkdirTemp(dir, "..content_")
	if err != nil {
		return err
	}
	if err := os.Chmod(content, 0o755); err != nil {
		return err
	}
	tops := map[string]bool{}
	for p, f := range files {
		path := filepath.Join(content, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(path, f.mode); err != nil { // WriteFile's mode is masked by the umask
			return err
		}
		tops[strings.SplitN(filepath.ToSlash(p), "/", 2)[0]] = true
	}
	old, _ := os.Readlink(filepath.Join(dir, dataLink))
	tmp := filepath.Join(dir, "..data_tmp")
	os.Remove(tmp)
	if err := os.Symlink(filepath.Base(content), tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, dataLink)); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") || tops[name] {
			continue
		}
		os.Remove(filepath.Join(dir, name)) // a key that is gone
	}
	for top := range tops {
		link := filepath.Join(dir, top)
		if _, err := os.Lstat(link); errors.Is(err, fs.ErrNotExist) {
			if err := os.Symlink(filepath.Join(dataLink, top), link); err != nil {
				return err
			}
		}
	}
	if old != "" && old != filepath.Base(content) {
		return os.RemoveAll(filepath.Join(dir, old))
	}
	return nil
}

// mounts are the bind mounts of container c's volumeMounts.
func (a *Agent) mounts(pod *corev1.Pod, c *corev1.Container, env map[string]string) ([]rt.Mount, error) {
	var out []rt.Mount
	for _, vm := range c.VolumeMounts {
		i := slices.IndexFunc(pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == vm.Name })
		if i < 0 {
			return nil, fmt.Errorf("volumeMount %q names no volume of the pod", vm.Name)
		}
		v := &pod.Spec.Volumes[i]
		dir, err := a.volumeDir(pod, v)
		if err != nil {
			return nil, err
		}
		m := rt.Mount{Source: dir, Destination: vm.MountPath, ReadOnly: vm.ReadOnly || v.EmptyDir == nil}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expand(vm.SubPathExpr, env)
		}
		if sub != "" {
			if !filepath.IsLocal(sub) {
				return nil, fmt.Errorf("subPath %q must be relative and may not contain '..'", sub)
			}
			path := filepath.Join(dir, sub)
			if v.EmptyDir != nil {
				if err := os.MkdirAll(path, 0o777); err != nil {
					return nil, err
				}
			}
			real, err := filepath.EvalSymlinks(path)
			if err != nil {
				return nil, fmt.Errorf("subPath %q of volume %q: %w", sub, vm.Name, err)
			}
			if rel, err := filepath.Rel(dir, real); err != nil || !filepath.IsLocal(rel) {
				return nil, fmt.Errorf("subPath %q of volume %q leaves the volume", sub, vm.Name)
			}
			m.Source = real
			if v.EmptyDir == nil {
				// A subPath of projected content does not follow updates, and
				// the content it points to is deleted by the next one (which
				// would detach the mount): the container gets its own copy.
				if m.Source, err = copySubPath(real, filepath.Join(filepath.Dir(dir), subPaths, c.Name, vm.Name+"-"+strconv.Itoa(len(out)))); err != nil {
					return nil, err
				}
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// removeVolumes deletes the volume directories of every pod whose UID is
// not in keep.
func (a *Agent) removeVolumes(keep map[string]bool) {
	for _, root := range []string{a.cfg.VolumeDir, a.cfg.MemoryDir} {
		if root == "" {
			continue
		}
		entries, err := os.ReadDir(root)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !keep[e.Name()] {
				a.removePodVolumes(root, e.Name())
			}
		}
	}
}

func (a *Agent) removePodVolumes(root, uid string) {
	dir := filepath.Join(root, uid)
	if err := os.RemoveAll(dir); err != nil {
		a.log.Warn("remove pod volumes", "dir", dir, "err", err)
	}
	a.mu.Lock()
	for k := range a.volumes {
		if strings.HasPrefix(k, dir+string(filepath.Separator)) {
			delete(a.volumes, k)
		}
	}
	a.mu.Unlock()
}

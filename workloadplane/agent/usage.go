package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/procfs"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"

	"github.com/mycelfabric/mycel/workloadplane/objects"
	rt "github.com/mycelfabric/mycel/workloadplane/runtime"
)

// UsagePath is where a node's streaming server (StreamHandler) answers
// what the node and its pods use now, as a UsageReport in JSON. Any
// node's API gathers these for metrics.k8s.io (`kubectl top`), and the
// autoscaler for HorizontalPodAutoscalers (docs/protocols.md).
const UsagePath = "/usage"

const (
	// minUsageWindow is the shortest interval CPU usage is measured over.
	minUsageWindow = time.Second
	// usageFresh is how long a measurement is answered again rather than
	// taken anew.
	usageFresh = 5 * time.Second
	// maxUsageWindow is the longest interval a new sample is rated
	// against the previous one over; beyond it the agent measures anew.
	maxUsageWindow = 2 * time.Minute
)

// UsageReport is one node's usage and that of its running pods, measured
// over the same window, in metrics.k8s.io's types (the node's labels and
// the pods' are left to the reader, which has the objects).
type UsageReport struct {
	Node metricsv1beta1.NodeMetrics  `json:"node"`
	Pods []metricsv1beta1.PodMetrics `json:"pods"`
}

// HostUsage is what the whole machine uses at one moment.
type HostUsage struct {
	// CPU is the busy time of all its CPUs since boot.
	CPU time.Duration
	// Memory is the memory in use, in bytes: total less available.
	Memory uint64
}

// procHostUsage reads the machine's usage from /proc, as kubelet's
// summary reports the root cgroup.
func procHostUsage() (HostUsage, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return HostUsage{}, err
	}
	st, err := fs.Stat()
	if err != nil {
		return HostUsage{}, err
	}
	mi, err := fs.Meminfo()
	if err != nil {
		return HostUsage{}, err
	}
	c := st.CPUTotal
	busy := c.User + c.Nice + c.System + c.IRQ + c.SoftIRQ + c.Steal
	var mem uint64
	if mi.MemTotalBytes != nil && mi.MemAvailableBytes != nil {
		mem = *mi.MemTotalBytes - *mi.MemAvailableBytes
	}
	return HostUsage{CPU: time.Duration(busy * float64(time.Second)), Memory: mem}, nil
}

// usageSample is the machine's and every running container's usage at one
// moment.
type usageSample struct {
	at   time.Time
	host HostUsage
	ctrs map[string]rt.Stats // by container ID
}

// Usage measures the node and its running pods. CPU is a rate, so it
// takes two samples at least minUsageWindow apart; a measurement is
// reused for usageFresh, so `kubectl top` and the autoscaler asking at
// once cost one.
func (a *Agent) Usage(ctx context.Context) (*UsageReport, error) {
	sr, ok := rt.As[rt.StatsReader](a.cfg.Runtime)
	if !ok {
		return nil, a.notSupported("resource usage (metrics.k8s.io)")
	}
	a.usageMu.Lock()
	defer a.usageMu.Unlock()
	if a.usageLast == nil || time.Since(a.usageLast.at) > usageFresh {
		cur, err := a.sampleUsage(ctx, sr)
		if err != nil {
			return nil, err
		}
		prev := a.usageLast
		if prev == nil || cur.at.Sub(prev.at) < minUsageWindow || cur.at.Sub(prev.at) > maxUsageWindow {
			prev = cur
			timer := time.NewTimer(minUsageWindow) // the measurement's window, not a wait for an event
			select {
			case <-ctx.Done():
				timer.Stop()
				return nil, ctx.Err()
			case <-timer.C:
			}
			if cur, err = a.sampleUsage(ctx, sr); err != nil {
				return nil, err
			}
		}
		a.usagePrev, a.usageLast = prev, cur
	}
	ctrs, err := a.cfg.Runtime.List(ctx, map[string]string{rt.LabelNode: a.cfg.NodeName})
	if err != nil {
		return nil, apierrors.NewServiceUnavailable(err.Error())
	}
	return a.usageReport(a.usagePrev, a.usageLast, slices.DeleteFunc(ctrs, func(c rt.Container) bool { return !a.owns(c.Labels) })), nil
}

func (a *Agent) sampleUsage(ctx context.Context, sr rt.StatsReader) (*usageSample, error) {
	host := a.cfg.HostUsage
	if host == nil {
		host = procHostUsage
	}
	h, err := host()
	if err != nil {
		return nil, apierrors.NewInternalError(fmt.Errorf("read the machine's usage: %w", err))
	}
	ctrs, err := sr.Stats(ctx)
	if err != nil {
		return nil, apierrors.NewServiceUnavailable(err.Error())
	}
	return &usageSample{at: time.Now(), host: h, ctrs: ctrs}, nil
}

// usageReport rates cur against prev: the CPU each container of ctrs
// used between them and the memory it uses at cur. A container without
// both samples (it started since prev) is left out, and a pod with none.
func (a *Agent) usageReport(prev, cur *usageSample, ctrs []rt.Container) *UsageReport {
	window := cur.at.Sub(prev.at)
	ts := metav1.NewTime(cur.at)
	r := &UsageReport{Node: metricsv1beta1.NodeMetrics{
		ObjectMeta: metav1.ObjectMeta{Name: a.cfg.NodeName},
		Timestamp:  ts, Window: metav1.Duration{Duration: window},
		Usage: usage(rate(prev.host.CPU, cur.host.CPU, window), cur.host.Memory),
	}}
	pods := map[string]*metricsv1beta1.PodMetrics{}
	var uids []string
	for _, c := range ctrs {
		was, ok1 := prev.ctrs[c.ID]
		now, ok2 := cur.ctrs[c.ID]
		if !ok1 || !ok2 || c.State != rt.StateRunning {
			continue
		}
		uid := c.Labels[rt.LabelPodUID]
		pm := pods[uid]
		if pm == nil {
			pm = &metricsv1beta1.PodMetrics{
				ObjectMeta: metav1.ObjectMeta{Name: c.Labels[rt.LabelPod], Namespace: c.Labels[rt.LabelNamespace], UID: types.UID(uid)},
				Timestamp:  ts, Window: metav1.Duration{Duration: window},
			}
			pods[uid] = pm
			uids = append(uids, uid)
		}
		pm.Containers = append(pm.Containers, metricsv1beta1.ContainerMetrics{
			Name: c.Labels[rt.LabelContainer], Usage: usage(rate(was.CPU, now.CPU, window), now.Memory),
		})
	}
	for _, uid := range uids {
		pm := pods[uid]
		slices.SortFunc(pm.Containers, func(x, y metricsv1beta1.ContainerMetrics) int { return strings.Compare(x.Name, y.Name) })
		r.Pods = append(r.Pods, *pm)
	}
	slices.SortFunc(r.Pods, func(x, y metricsv1beta1.PodMetrics) int {
		return strings.Compare(x.Namespace+"/"+x.Name, y.Namespace+"/"+y.Name)
	})
	return r
}

// rate is the CPU used from was to now over window, in nanocores; a
// counter that went back (a restarted engine) counts as none.
func rate(was, now, window time.Duration) int64 {
	if now < was || window <= 0 {
		return 0
	}
	return int64(float64(now-was) / float64(window) * 1e9)
}

func usage(nanocores int64, memory uint64) corev1.ResourceList {
	return corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewScaledQuantity(nanocores, resource.Nano),
		corev1.ResourceMemory: *resource.NewQuantity(int64(memory), resource.BinarySI),
	}
}

func (s streamServer) serveUsage(w http.ResponseWriter, r *http.Request) {
	rep, err := s.a.Usage(r.Context())
	if err != nil {
		writeStatus(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(rep)
}

// FabricUsage gathers the usage reports of the fabric's nodes from their
// streaming servers: metrics.k8s.io for every node's API, and pod metrics
// for the autoscaler. It keeps nothing: each call asks the nodes that
// matter now, in parallel.
type FabricUsage struct {
	// Client lists the nodes and pods.
	Client Client
	// Transport reaches a node's streaming server: a URL's host is a node
	// name.
	Transport http.RoundTripper
	// Timeout bounds each node's answer; zero means 10s. A node that does
	// not answer in time is left out, as metrics-server leaves out a node
	// it cannot scrape.
	Timeout time.Duration
}

// NodeMetrics is the usage of every Ready node that answers, labelled as
// its Node is.
func (u *FabricUsage) NodeMetrics(ctx context.Context) ([]metricsv1beta1.NodeMetrics, error) {
	var nodes corev1.NodeList
	if err := u.Client.List(ctx, &nodes, "", nil); err != nil {
		return nil, err
	}
	byName := map[string]*corev1.Node{}
	var names []string
	for i := range nodes.Items {
		n := &nodes.Items[i]
		if c := objects.NodeCondition(n, corev1.NodeReady); c != nil && c.Status == corev1.ConditionTrue {
			byName[n.Name] = n
			names = append(names, n.Name)
		}
	}
	var out []metricsv1beta1.NodeMetrics
	for _, rep := range u.fetch(ctx, names) {
		nm := rep.Node
		if n := byName[nm.Name]; n != nil {
			nm.Labels = n.Labels
			out = append(out, nm)
		}
	}
	slices.SortFunc(out, func(x, y metricsv1beta1.NodeMetrics) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// PodMetrics is the usage of the running pods of namespace ("" for all),
// labelled as the pods are, asking only the nodes they run on.
func (u *FabricUsage) PodMetrics(ctx context.Context, namespace string) ([]metricsv1beta1.PodMetrics, error) {
	var pods corev1.PodList
	if err := u.Client.List(ctx, &pods, namespace, nil); err != nil {
		return nil, err
	}
	byUID := map[types.UID]*corev1.Pod{}
	var nodes []string
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Spec.NodeName == "" || p.Status.Phase != corev1.PodRunning {
			continue
		}
		byUID[p.UID] = p
		if !slices.Contains(nodes, p.Spec.NodeName) {
			nodes = append(nodes, p.Spec.NodeName)
		}
	}
	var out []metricsv1beta1.PodMetrics
	for _, rep := range u.fetch(ctx, nodes) {
		for _, pm := range rep.Pods {
			if p := byUID[pm.UID]; p != nil {
				pm.Labels = p.Labels
				out = append(out, pm)
			}
		}
	}
	slices.SortFunc(out, func(x, y metricsv1beta1.PodMetrics) int {
		return strings.Compare(x.Namespace+"/"+x.Name, y.Namespace+"/"+y.Name)
	})
	return out, nil
}

// fetch asks every node in names for its report at once and returns those
// that answered.
func (u *FabricUsage) fetch(ctx context.Context, names []string) []*UsageReport {
	timeout := u.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	reps := make([]*UsageReport, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { reps[i], _ = u.fetchNode(ctx, name) })
	}
	wg.Wait()
	return slices.DeleteFunc(reps, func(r *UsageReport) bool { return r == nil })
}

func (u *FabricUsage) fetchNode(ctx context.Context, node string) (*UsageReport, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+node+UsagePath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := u.Transport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("usage of node %s: %s", node, resp.Status)
	}
	var rep UsageReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return nil, fmt.Errorf("usage of node %s: %w", node, err)
	}
	return &rep, nil
}

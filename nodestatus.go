package mycel

import (
	"bufio"
	"context"
	"os"
	goruntime "runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/mycelfabric/mycel/workloadplane/sched"
)

// LabelPeerID is the Node label naming the node's libp2p peer.
const LabelPeerID = sched.LabelPeerID

const maxPods = 110

func (n *Node) publishNode(ctx context.Context) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.cfg.Name}}
	err := n.objs.Get(ctx, node)
	if apierrors.IsNotFound(err) {
		node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.cfg.Name}}
		n.nodeMeta(node)
		if err := n.objs.Create(ctx, node); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		if err := n.objs.Get(ctx, node); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	before := node.DeepCopy()
	n.nodeMeta(node)
	if !equalMeta(before, node) {
		if err := n.objs.Update(ctx, node); err != nil {
			return err
		}
	}
	node.Status = n.nodeStatus(ctx, node.Status)
	return n.objs.UpdateStatus(ctx, node)
}

func equalMeta(a, b *corev1.Node) bool {
	if len(a.Labels) != len(b.Labels) {
		return false
	}
	for k, v := range a.Labels {
		if b.Labels[k] != v {
			return false
		}
	}
	return true
}

// nodeMeta sets the labels Mycel owns, keeping labels users added.
func (n *Node) nodeMeta(node *corev1.Node) {
	if node.Labels == nil {
		node.Labels = map[string]string{}
	}
	node.Labels[corev1.LabelHostname] = n.cfg.Name
	node.Labels[corev1.LabelOSStable] = goruntime.GOOS
	node.Labels[corev1.LabelArchStable] = goruntime.GOARCH
	node.Labels[LabelPeerID] = n.id.ID.String()
	for k, v := range n.cfg.Labels {
		node.Labels[k] = v
	}
}

func (n *Node) nodeStatus(ctx context.Context, old corev1.NodeStatus) corev1.NodeStatus {
	now := metav1.NewTime(time.Now())
	ready := corev1.NodeCondition{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "MycelReady", Message: "mycel node is ready and its container runtime answers"}
	rtVersion := "podman://unknown"
	if info, err := n.runtime.Info(ctx); err != nil {
		ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, "ContainerRuntimeUnavailable", "container runtime is down: "+err.Error()
	} else {
		rtVersion = info.Name + "://" + info.Version
		if err := n.agent.Healthy(); err != nil {
			ready.Status, ready.Reason, ready.Message = corev1.ConditionFalse, "ContainerRuntimeUnavailable", "container runtime is down: "+err.Error()
		}
	}
	ready.LastHeartbeatTime = now
	ready.LastTransitionTime = now
	for _, c := range old.Conditions {
		if c.Type == corev1.NodeReady && c.Status == ready.Status {
			ready.LastTransitionTime = c.LastTransitionTime
		}
	}
	capacity := n.capacity()
	host, _ := os.Hostname()
	apiHost := strings.TrimPrefix(n.url, "https://")
	if i := strings.LastIndex(apiHost, ":"); i >= 0 {
		apiHost = strings.Trim(apiHost[:i], "[]")
	}
	return corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: capacity,
		Phase:       corev1.NodeRunning,
		Conditions:  []corev1.NodeCondition{ready},
		Addresses:   []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: apiHost}, {Type: corev1.NodeHostName, Address: host}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               n.id.ID.String(),
			KernelVersion:           kernelVersion(),
			OSImage:                 osImage(),
			ContainerRuntimeVersion: rtVersion,
			KubeletVersion:          "mycel/v" + Version,
			KubeProxyVersion:        "",
			OperatingSystem:         goruntime.GOOS,
			Architecture:            goruntime.GOARCH,
		},
	}
}

// capacity is what this machine offers (measured once, at start).
func (n *Node) capacity() corev1.ResourceList { return n.machine }

// measureCapacity is the machine's CPUs, memory and 110 pods, or what
// Config.Capacity says instead.
func (n *Node) measureCapacity() corev1.ResourceList {
	c := corev1.ResourceList{
		corev1.ResourceCPU:    *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory: *resource.NewQuantity(memTotal(), resource.BinarySI),
		corev1.ResourcePods:   *resource.NewQuantity(maxPods, resource.DecimalSI),
	}
	for k, q := range n.cfg.Capacity {
		c[k] = q
	}
	return c
}

func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func kernelVersion() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func osImage() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return goruntime.GOOS
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return goruntime.GOOS
}

func goVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi.GoVersion
	}
	return goruntime.Version()
}

package sched

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/mycelfabric/mycel/workloadplane/objects"
	"github.com/mycelfabric/mycel/workloadplane/store"
)

// directTransport hands messages straight to bidders by peer ID.
type directTransport map[string]*Bidder

func (d directTransport) Tender(ctx context.Context, peers []string, t Tender) []Answer {
	out := make([]Answer, len(peers))
	for i, peer := range peers {
		out[i].Reply = d[peer].OnTender(ctx, t.Owner, t)
	}
	return out
}

func (d directTransport) Award(_ context.Context, peer string, a Award) (Reply, error) {
	owner, _, _ := strings.Cut(a.Tender, "/")
	return d[peer].OnAward(owner, a)
}

type acceptAll struct{}

func (acceptAll) Place(context.Context, PolicyInput) (Verdict, error) { return Verdict{Score: 1}, nil }

type schedHarness struct {
	objs  *objects.Objects
	s     *Scheduler
	now   time.Time
	live  map[string]bool
	dead  map[string]death
	nodes []string
}

type death struct {
	at        time.Time
	confirmed bool
}

// harnessMembers are the harness's members: live as h.live says, dead as
// h.dead says, advertising no versions.
type harnessMembers struct{ h *schedHarness }

func (m harnessMembers) Live(peer string) bool             { return m.h.live[peer] }
func (m harnessMembers) Versions(string) map[string]string { return nil }
func (m harnessMembers) Death(peer string) (time.Time, bool, bool) {
	d, ok := m.h.dead[peer]
	return d.at, d.confirmed, ok
}

// newSchedHarness stores two Ready nodes of 1 CPU and 1 GiB each, with
// bidders that read their usage from the store, and a scheduler owning
// every pod.
func newSchedHarness(t *testing.T) *schedHarness {
	st, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{Node: "owner"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := &schedHarness{objs: objects.New(st, objects.Config{}), now: time.Now(), live: map[string]bool{"peer-a": true, "peer-b": true}, dead: map[string]death{}}
	ctx := context.Background()
	if err := h.objs.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "default"}}); err != nil {
		t.Fatal(err)
	}
	tr := directTransport{}
	for _, name := range []string{"a", "b"} {
		n := node(name, true, nil)
		n.Status.Conditions[0].LastTransitionTime = metav1.NewTime(h.now.Add(-time.Hour))
		n.Status.Allocatable = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi"), corev1.ResourcePods: resource.MustParse("110")}
		status := n.Status
		if err := h.objs.Create(ctx, &n); err != nil {
			t.Fatal(err)
		}
		n.Status = status // the API drops status on create, as Kubernetes does
		if err := h.objs.UpdateStatus(ctx, &n); err != nil {
			t.Fatal(err)
		}
		h.nodes = append(h.nodes, name)
		b, err := NewBidder(BidderConfig{Policy: acceptAll{}, Now: func() time.Time { return h.now }, Facts: func() (Facts, error) {
			f := Facts{Node: name, Allocatable: Allocatable(&n), Bound: map[types.UID]bool{}}
			var pods corev1.PodList
			err := h.objs.List(ctx, &pods, "", nil)
			for _, p := range pods.Items {
				if p.Spec.NodeName == name {
					f.Used, f.Bound[p.UID] = f.Used.Add(Requests(&p)), true
				}
			}
			return f, err
		}})
		if err != nil {
			t.Fatal(err)
		}
		tr["peer-"+name] = b
	}
	p, err := NewPlacer(PlacerConfig{Self: "owner", Transport: tr, Now: func() time.Time { return h.now }})
	if err != nil {
		t.Fatal(err)
	}
	h.s, err = New(Config{Client: h.objs, Placer: p, Members: harnessMembers{h}, Now: func() time.Time { return h.now }})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *schedHarness) pod(t *testing.T, name, mem string, controlled bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i",
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(mem)}}}}}}
	if controlled {
		yes := true
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "rs", UID: "rs-uid", Controller: &yes}}
	}
	if err := h.objs.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (h *schedHarness) events(t *testing.T, reason string) []corev1.Event {
	var evs corev1.EventList
	if err := h.objs.List(context.Background(), &evs, "default", nil); err != nil {
		t.Fatal(err)
	}
	var out []corev1.Event
	for _, e := range evs.Items {
		if e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

func TestSchedulerBindsAndExplains(t *testing.T) {
	h := newSchedHarness(t)
	ctx := context.Background()
	fits := h.pod(t, "fits", "512Mi", false)
	big := h.pod(t, "big", "2Gi", false)
	if _, err := h.s.ScheduleAll(ctx); err != nil {
		t.Fatal(err)
	}
	h.objs.Get(ctx, fits)
	if fits.Spec.NodeName == "" || len(h.events(t, "Scheduled")) != 1 {
		t.Fatalf("pod that fits: bound to %q, %d Scheduled events", fits.Spec.NodeName, len(h.events(t, "Scheduled")))
	}
	h.objs.Get(ctx, big)
	want := "0/2 nodes are available: 2 insufficient memory."
	if big.Spec.NodeName != "" || len(big.Status.Conditions) != 1 || big.Status.Conditions[0].Reason != corev1.PodReasonUnschedulable || big.Status.Conditions[0].Message != want {
		t.Fatalf("pod too big: bound to %q, conditions %+v; want Unschedulable %q", big.Spec.NodeName, big.Status.Conditions, want)
	}
	// Retried after its backoff, for the same reason: no second event.
	if wait, _ := h.s.ScheduleAll(ctx); wait <= 0 || wait > time.Second {
		t.Fatalf("next retry in %v, want within the first 1 s backoff", wait)
	}
	h.now = h.now.Add(2 * time.Second)
	h.s.ScheduleAll(ctx)
	if evs := h.events(t, "FailedScheduling"); len(evs) != 1 || evs[0].Message != want {
		t.Fatalf("FailedScheduling events %+v, want one saying %q", evs, want)
	}
}

func TestSchedulerReplacesPodsOfLostNodes(t *testing.T) {
	h := newSchedHarness(t)
	ctx := context.Background()
	lost := h.pod(t, "on-b", "64Mi", true)
	bare := h.pod(t, "bare-on-b", "64Mi", false)
	// A DaemonSet's pod tolerates an unreachable node for good, another
	// pod for a minute.
	daemon := h.tolerating(t, "daemon-on-b", corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute})
	patient := h.tolerating(t, "patient-on-b", corev1.Toleration{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: new(int64(60))})
	for _, p := range []*corev1.Pod{lost, bare, daemon, patient} {
		p.Spec.NodeName = "b"
		if err := h.objs.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	// node-b stops answering; its Node turns Unknown now.
	h.live["peer-b"] = false
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "b"}}
	h.objs.Get(ctx, n)
	n.Status.Conditions[0].Status, n.Status.Conditions[0].LastTransitionTime = corev1.ConditionUnknown, metav1.NewTime(h.now)
	if err := h.objs.UpdateStatus(ctx, n); err != nil {
		t.Fatal(err)
	}
	// The scheduler wakes when the node will count as lost, not later.
	// (Conditions keep whole seconds, so a little less than 5 s.)
	if wait, _ := h.s.ScheduleAll(ctx); wait > 5*time.Second || wait < 4*time.Second {
		t.Fatalf("next wake in %v, want about 5s (when node b will have been NotReady for LostAfter)", wait)
	}
	if err := h.objs.Get(ctx, lost); err != nil {
		t.Fatalf("pod deleted at once, before the node was lost for %v: %v", 5*time.Second, err)
	}
	h.now = h.now.Add(6 * time.Second)
	h.s.ScheduleAll(ctx)
	if err := h.objs.Get(ctx, lost); err == nil {
		t.Fatal("controlled pod of a lost node still exists")
	}
	for _, p := range []*corev1.Pod{bare, daemon, patient} {
		if err := h.objs.Get(ctx, p); err != nil {
			t.Fatalf("pod %s of a lost node deleted: %v", p.Name, err)
		}
	}
	if evs := h.events(t, "NodeLost"); len(evs) != 1 {
		t.Fatalf("%d NodeLost events, want 1", len(evs))
	}
	h.now = h.now.Add(time.Minute)
	h.s.ScheduleAll(ctx)
	if err := h.objs.Get(ctx, patient); err == nil {
		t.Fatal("pod tolerating an unreachable node for 60 s still exists after 66 s")
	}
	if err := h.objs.Get(ctx, daemon); err != nil {
		t.Fatalf("pod tolerating an unreachable node for good deleted: %v", err)
	}
}

// TestSchedulerReplacesAtOnceOnConfirmedDeath: a node that membership
// declared dead without confirmation keeps its pods for LostAfter, and
// keeps them for good if it refutes the death in that time; a confirmed
// death re-places them at once.
func TestSchedulerReplacesAtOnceOnConfirmedDeath(t *testing.T) {
	h := newSchedHarness(t)
	ctx := context.Background()
	p := h.pod(t, "on-b", "64Mi", true)
	p.Spec.NodeName = "b"
	if err := h.objs.Update(ctx, p); err != nil {
		t.Fatal(err)
	}
	h.live["peer-b"], h.dead["peer-b"] = false, death{at: h.now}
	if wait, _ := h.s.ScheduleAll(ctx); wait != 5*time.Second {
		t.Fatalf("next wake in %v after an unconfirmed death, want LostAfter (5s)", wait)
	}
	h.now = h.now.Add(4 * time.Second)
	h.live["peer-b"] = true // refuted
	delete(h.dead, "peer-b")
	h.now = h.now.Add(2 * time.Second)
	h.s.ScheduleAll(ctx)
	if err := h.objs.Get(ctx, p); err != nil || p.DeletionTimestamp != nil {
		t.Fatalf("pod of a node that refuted its death deleted: %v", err)
	}

	h.live["peer-b"], h.dead["peer-b"] = false, death{at: h.now, confirmed: true}
	h.s.ScheduleAll(ctx)
	if err := h.objs.Get(ctx, p); err == nil {
		t.Fatal("pod of a node confirmed dead still exists")
	}
	if evs := h.events(t, "NodeLost"); len(evs) != 1 {
		t.Fatalf("%d NodeLost events, want 1", len(evs))
	}
}

// TestSchedulerFinishesDeletionsOnLostNodes: a pod being deleted on a node
// that is lost would stay Terminating until the node came back; it is
// deleted once the node counts as lost. On a live node it waits for the
// node.
func TestSchedulerFinishesDeletionsOnLostNodes(t *testing.T) {
	h := newSchedHarness(t)
	ctx := context.Background()
	var pods []*corev1.Pod
	for _, node := range []string{"a", "b"} {
		p := h.pod(t, "bare-on-"+node, "64Mi", false)
		p.Spec.NodeName = node
		if err := h.objs.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		if err := h.objs.Delete(ctx, p, new(int64(30))); err != nil {
			t.Fatal(err)
		}
		if err := h.objs.Get(ctx, p); err != nil || p.DeletionTimestamp == nil {
			t.Fatalf("pod %s: %v, deletionTimestamp %v: want it terminating", p.Name, err, p.DeletionTimestamp)
		}
		pods = append(pods, p)
	}
	h.live["peer-b"], h.dead["peer-b"] = false, death{at: h.now, confirmed: true}
	h.s.ScheduleAll(ctx)
	if err := h.objs.Get(ctx, pods[1]); err == nil {
		t.Fatal("a terminating pod of a node confirmed dead still exists")
	}
	if err := h.objs.Get(ctx, pods[0]); err != nil {
		t.Fatalf("a terminating pod of a live node was deleted before its node finished it: %v", err)
	}
}

// tolerating is a controlled pod with one toleration.
func (h *schedHarness) tolerating(t *testing.T, name string, tol corev1.Toleration) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", OwnerReferences: []metav1.OwnerReference{
		{APIVersion: "apps/v1", Kind: "DaemonSet", Name: "ds", UID: "ds-uid", Controller: new(true)}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "i"}}, Tolerations: []corev1.Toleration{tol}}}
	if err := h.objs.Create(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSchedulerEvictsForNoExecuteTaints(t *testing.T) {
	h := newSchedHarness(t)
	ctx := context.Background()
	evict := corev1.Taint{Key: "maintenance", Effect: corev1.TaintEffectNoExecute}
	plain := h.pod(t, "plain", "64Mi", false)
	patient := h.tolerating(t, "patient", corev1.Toleration{Key: "maintenance", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: new(int64(30))})
	forever := h.tolerating(t, "forever", corev1.Toleration{Key: "maintenance", Operator: corev1.TolerationOpExists})
	other := h.pod(t, "elsewhere", "64Mi", false)
	for _, p := range []*corev1.Pod{plain, patient, forever, other} {
		p.Spec.NodeName = "a"
		if p == other {
			p.Spec.NodeName = "b"
		}
		if err := h.objs.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a"}}
	h.objs.Get(ctx, n)
	n.Spec.Taints = []corev1.Taint{evict, {Key: "quiet", Effect: corev1.TaintEffectNoSchedule}}
	if err := h.objs.Update(ctx, n); err != nil {
		t.Fatal(err)
	}
	h.objs.Get(ctx, n)
	if n.Spec.Taints[0].TimeAdded == nil {
		t.Fatal("a NoExecute taint was stored without timeAdded")
	}
	h.now = n.Spec.Taints[0].TimeAdded.Time
	if _, err := h.s.ScheduleAll(ctx); err != nil {
		t.Fatal(err)
	}
	deleting := func(p *corev1.Pod) bool {
		err := h.objs.Get(ctx, p)
		return err != nil || p.DeletionTimestamp != nil
	}
	if !deleting(plain) || deleting(patient) || deleting(forever) || deleting(other) {
		t.Fatalf("after the taint: plain %v, patient %v, forever %v, elsewhere %v; want only plain evicted",
			deleting(plain), deleting(patient), deleting(forever), deleting(other))
	}
	if evs := h.events(t, "TaintManagerEviction"); len(evs) != 1 || !strings.Contains(evs[0].Message, "{maintenance: }") {
		t.Fatalf("eviction events %+v, want one naming the taint", evs)
	}
	h.now = h.now.Add(29 * time.Second)
	if wait, _ := h.s.ScheduleAll(ctx); deleting(patient) || wait != time.Second {
		t.Fatalf("29 s later: patient evicted %v, next wake in %v; want false, 1 s", deleting(patient), wait)
	}
	h.now = h.now.Add(time.Second)
	h.s.ScheduleAll(ctx)
	if !deleting(patient) || deleting(forever) {
		t.Fatalf("30 s later: patient evicted %v, forever evicted %v; want true, false", deleting(patient), deleting(forever))
	}
}

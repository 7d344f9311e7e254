package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestJobsWithKubectl: `kubectl create job` runs to completion on real
// Podman, `kubectl logs job/NAME` shows its output, and a Job whose pod
// fails past its backoffLimit is Failed.
func TestJobsWithKubectl(t *testing.T) {
	n := startNode(t)
	n.kubectl("create", "job", "hello", "--image="+demoImage, "--", "/mycel-demo", "exit", "0", "hello from a job")
	n.kubectl("create", "job", "doomed", "--image="+demoImage, "--", "/mycel-demo", "exit", "3")
	n.kubectl("patch", "job", "doomed", "--type=merge", "-p", `{"spec":{"backoffLimit":0}}`)
	eventually(t, 90*time.Second, func() error {
		_, err := n.kubectlErr("wait", "--for=condition=complete", "job/hello", "--timeout=5s")
		return err
	})
	if out := n.kubectl("logs", "job/hello"); strings.TrimSpace(out) != "hello from a job" {
		t.Fatalf("kubectl logs job/hello: %q", out)
	}
	if out := n.kubectl("get", "job", "hello", "--no-headers"); !strings.Contains(out, "Complete") || !strings.Contains(out, "1/1") {
		t.Fatalf("kubectl get job hello: %q", out)
	}
	eventually(t, 90*time.Second, func() error {
		_, err := n.kubectlErr("wait", "--for=condition=failed", "job/doomed", "--timeout=5s")
		return err
	})
}

// TestCronJobsWithKubectl: `kubectl create cronjob` makes a CronJob whose
// next schedule time runs a Job to completion on real Podman, exactly
// once on a fabric of two nodes; `kubectl create job --from=cronjob/` runs
// one now; `kubectl get cronjobs` shows kubectl's columns.
func TestCronJobsWithKubectl(t *testing.T) {
	a := startNode(t)
	b := joinNode(t, a)
	a.kubectl("create", "cronjob", "tick", "--image="+demoImage, "--schedule=* * * * *", "--", "/mycel-demo", "exit", "0", "tick")
	b.kubectl("create", "job", "now", "--from=cronjob/tick")
	b.kubectl("wait", "--for=condition=complete", "job/now", "--timeout=90s")
	// The next minute's Job, made by whichever node owns the CronJob.
	a.kubectl("wait", "--for=jsonpath={.status.lastScheduleTime}", "cronjob/tick", "--timeout=90s")
	scheduled := strings.TrimSpace(a.kubectl("get", "jobs", "-o", `jsonpath={range .items[?(@.metadata.annotations.batch\.kubernetes\.io/cronjob-scheduled-timestamp)]}{.metadata.name}{"\n"}{end}`))
	if strings.Count(scheduled, "\n") != 0 || !strings.HasPrefix(scheduled, "tick-") {
		t.Fatalf("Jobs for the first schedule time: %q", scheduled)
	}
	b.kubectl("wait", "--for=condition=complete", "job/"+scheduled, "--timeout=90s")
	if out := a.kubectl("logs", "job/"+scheduled); strings.TrimSpace(out) != "tick" {
		t.Fatalf("kubectl logs of the scheduled Job: %q", out)
	}
	out := a.kubectl("get", "cronjobs")
	if !strings.Contains(out, "SCHEDULE") || !strings.Contains(out, "LAST SCHEDULE") || !strings.Contains(out, "* * * * *") {
		t.Fatalf("kubectl get cronjobs:\n%s", out)
	}
	if out, err := a.kubectlErr("create", "cronjob", "bad", "--image="+demoImage, "--schedule=61 * * * *"); err == nil || !strings.Contains(out, "spec.schedule") {
		t.Fatalf("an invalid schedule: %v\n%s", err, out)
	}
}

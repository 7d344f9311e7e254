package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestConcurrentLabelsAllSurvive: 100 `kubectl label` commands, each adding
// a different label to one Namespace, run at once through the APIs of five
// nodes; every one is acknowledged, and in the end every node holds all
// 100 labels (the store merges per label key).
func TestConcurrentLabelsAllSurvive(t *testing.T) {
	_, nodes := onHosts(t, 5)
	nodes[0].kubectl("create", "namespace", "merged")
	waitFor := func(n *node) {
		eventually(t, 60*time.Second, func() error {
			_, err := n.kubectlErr("get", "namespace", "merged")
			return err
		})
	}
	for _, n := range nodes {
		waitFor(n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := nodes[i%5].kubectlErr("label", "namespace", "merged", fmt.Sprintf("l%03d=v", i)); err != nil {
				errs <- fmt.Errorf("label %d: %v: %s", i, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, n := range nodes {
		eventually(t, 60*time.Second, func() error {
			out, err := n.kubectlErr("get", "namespace", "merged", "-o", "jsonpath={.metadata.labels}")
			if err != nil {
				return err
			}
			if got := strings.Count(out, `":"v"`); got != 100 {
				return fmt.Errorf("%s holds %d of the 100 labels: %s", n.name, got, out)
			}
			return nil
		})
	}
}

package mycel

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// component is one part of a node. A node starts its components in order
// and closes them in reverse; a new subsystem is one more entry in
// Node.components.
type component struct {
	name string
	// start builds the part; it must not start goroutines (run does).
	start func(ctx context.Context) error
	// run, if set, runs the part until ctx is done. Runs start once every
	// component has started, each on a goroutine of its own.
	run func(ctx context.Context)
	// close, if set, releases what start acquired. It is called after
	// every run has returned, and only for components that started.
	close func() error
}

// goroutines tracks every goroutine of a node and refuses new ones once
// shutdown has begun (nats-server's startGoRoutine).
type goroutines struct {
	mu       sync.Mutex
	stopping bool
	wg       sync.WaitGroup
}

// Go runs fn on a tracked goroutine, unless shutdown has begun; it reports
// whether fn was started.
func (g *goroutines) Go(fn func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopping {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		fn()
	}()
	return true
}

// Stop refuses new goroutines and waits for the running ones.
func (g *goroutines) Stop() {
	g.mu.Lock()
	g.stopping = true
	g.mu.Unlock()
	g.wg.Wait()
}

// lifecycle starts, runs and closes an ordered list of components.
type lifecycle struct {
	components []component
	started    int // how many components started
	cancel     context.CancelFunc
	goroutines goroutines
	closeOnce  sync.Once
	closeErr   error
}

// start starts the components in order; if one fails, it closes those
// that started, in reverse, and returns the error.
func (l *lifecycle) start(ctx context.Context) error {
	for _, c := range l.components {
		if err := c.start(ctx); err != nil {
			l.close()
			return fmt.Errorf("start %s: %w", c.name, err)
		}
		l.started++
	}
	return nil
}

// run starts every component's run, each on a tracked goroutine, with a
// context that close cancels.
func (l *lifecycle) run() {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for _, c := range l.components {
		if c.run != nil {
			l.goroutines.Go(func() { c.run(ctx) })
		}
	}
}

// close stops the runs (each stops its intake and drains: the API answers
// what it has accepted), waits for every goroutine, then closes the
// started components in reverse order. It is idempotent.
func (l *lifecycle) close() error {
	l.closeOnce.Do(func() {
		if l.cancel != nil {
			l.cancel()
		}
		l.goroutines.Stop()
		var errs []error
		for i := l.started - 1; i >= 0; i-- {
			if c := l.components[i]; c.close != nil {
				if err := c.close(); err != nil {
					errs = append(errs, fmt.Errorf("close %s: %w", c.name, err))
				}
			}
		}
		l.closeErr = errors.Join(errs...)
	})
	return l.closeErr
}

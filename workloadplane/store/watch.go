package store

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// ErrTooSlow ends a watch whose consumer fell too far behind; like a
// Kubernetes watch that expires, the consumer lists and watches again.
var ErrTooSlow = errors.New("store: watcher fell behind")

// Watcher delivers the events of keys under a prefix, in resourceVersion order.
type Watcher struct {
	store  *Store
	prefix string

	mu     sync.Mutex
	queue  []Event
	err    error
	notify chan struct{}
}

// Watch returns a watcher for keys starting with prefix that first replays
// every logged event after fromRV, then follows live changes. If fromRV is
// older than the retained log it returns ErrExpired.
func (s *Store) Watch(prefix string, fromRV uint64) (*Watcher, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if fromRV < s.oldest {
		return nil, ErrExpired
	}
	w := &Watcher{store: s, prefix: prefix, notify: make(chan struct{}, 1)}
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLog).Cursor()
		for k, v := c.Seek(u64(fromRV + 1)); k != nil; k, v = c.Next() {
			var ev Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return err
			}
			if strings.HasPrefix(ev.Record.Key, prefix) {
				w.queue = append(w.queue, ev)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.watchers[w] = struct{}{}
	if len(w.queue) > 0 {
		w.notify <- struct{}{}
	}
	return w, nil
}

// Next blocks until the next event, the watcher fails, or ctx is done.
func (w *Watcher) Next(ctx context.Context) (Event, error) {
	for {
		w.mu.Lock()
		if len(w.queue) > 0 {
			ev := w.queue[0]
			w.queue[0] = Event{}
			w.queue = w.queue[1:]
			w.mu.Unlock()
			return ev, nil
		}
		if w.err != nil {
			err := w.err
			w.mu.Unlock()
			return Event{}, err
		}
		w.mu.Unlock()
		select {
		case <-ctx.Done():
			return Event{}, ctx.Err()
		case <-w.notify:
		}
	}
}

// Close stops the watcher. It is idempotent.
func (w *Watcher) Close() {
	w.store.mu.Lock()
	delete(w.store.watchers, w)
	w.store.mu.Unlock()
	w.fail(ErrClosed)
}

// offer queues ev if it matches; called with the store's mutex held.
func (w *Watcher) offer(ev Event) {
	if !strings.HasPrefix(ev.Record.Key, w.prefix) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return
	}
	if len(w.queue) >= w.store.queue {
		w.err = ErrTooSlow
		w.queue = nil
	} else {
		w.queue = append(w.queue, ev)
	}
	w.wake()
}

func (w *Watcher) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
	w.wake()
}

func (w *Watcher) wake() {
	select {
	case w.notify <- struct{}{}:
	default:
	}
}

// Await waits until ok holds of what key holds (its record, live or a
// tombstone, and false for none), or ctx is done; it reports whether ok
// held.
func (s *Store) Await(ctx context.Context, key string, ok func(rec Record, exists bool) bool) bool {
	w, err := s.Watch(key, s.ResourceVersion())
	if err != nil {
		return false
	}
	defer w.Close()
	for {
		rec, err := s.record(key)
		if ok(rec, err == nil) {
			return true
		}
		for {
			ev, err := w.Next(ctx)
			if err != nil {
				return false
			}
			if ev.Record.Key == key {
				break
			}
		}
	}
}

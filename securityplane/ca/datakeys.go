package ca

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/mycelfabric/mycel/securityplane/datakey"
)

// DataKeys returns the trust domain's data keys kept in the CA directory,
// generating the first one if there is none yet (a CA directory from before
// data keys existed). Concurrent callers on one directory get the same ring.
func DataKeys(dir string, now func() time.Time) (*datakey.Ring, error) {
	var ring *datakey.Ring
	err := withLock(dir, func() error {
		path := filepath.Join(dir, datakey.File)
		r, err := datakey.Load(path, now)
		if err == nil {
			ring = r
			return nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if now == nil {
			now = time.Now
		}
		k, err := datakey.New(now(), now())
		if err != nil {
			return err
		}
		ring = datakey.NewRing(now, k)
		return writeRing(path, ring)
	})
	return ring, err
}

// RotateDataKey adds a data key to the CA directory that seals new values
// from activeFrom on, and returns it. Nodes fetch it with their next SVID
// renewal (at most 16 h away with 24 h SVIDs), so activeFrom should be
// further off than that (datakey.DefaultActivation).
func RotateDataKey(dir string, now, activeFrom time.Time) (datakey.Key, error) {
	var k datakey.Key
	err := withLock(dir, func() error {
		path := filepath.Join(dir, datakey.File)
		ring, err := datakey.Load(path, nil)
		if err != nil {
			return err
		}
		if k, err = datakey.New(now, activeFrom); err != nil {
			return err
		}
		ring.Add(k)
		return writeRing(path, ring)
	})
	return k, err
}

func writeRing(path string, ring *datakey.Ring) error {
	raw, err := ring.Marshal()
	if err != nil {
		return err
	}
	return WriteFile(path, raw, 0o600)
}

// withLock runs fn under the CA directory's data key lock, so concurrent
// node starts and rotations do not each write a different ring.
func withLock(dir string, fn func() error) error {
	lock, err := os.OpenFile(filepath.Join(dir, ".datakeys.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("ca: lock data keys: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("ca: lock data keys: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	return fn()
}

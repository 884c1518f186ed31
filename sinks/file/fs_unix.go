//go:build unix

package file

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// canSweep is true: the advisory lock protects live writers' files.
const canSweep = true

// tryLock takes an exclusive advisory lock on f without waiting; it
// reports false when another open file holds the lock. A lock dies with
// its process, so an unlocked temporary file belongs to no live writer.
func tryLock(f *os.File) (bool, error) {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return false, nil
		default:
			return false, fmt.Errorf("locking %s: %w", f.Name(), err)
		}
	}
}

// syncDir makes the directory's entries (a rename, a new file or
// directory) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory to sync: %w", err)
	}
	serr := d.Sync()
	cerr := d.Close()
	if serr != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, serr)
	}
	if cerr != nil {
		return fmt.Errorf("closing directory %s: %w", dir, cerr)
	}
	return nil
}

// linkUnsupported reports whether os.Link failed because the file system
// has no hard links (Linux says EPERM, others ENOTSUP or EOPNOTSUPP).
func linkUnsupported(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EOPNOTSUPP)
}

//go:build !unix

package file

import (
	"errors"
	"os"
)

// canSweep is false: without a portable advisory lock a sweep could remove
// a live writer's file, so leftover temporary files stay.
const canSweep = false

// tryLock has no advisory lock to take here.
func tryLock(*os.File) (bool, error) { return true, nil }

// syncDir is a no-op: directories cannot be synced through os.File here.
func syncDir(string) error { return nil }

// linkUnsupported reports whether os.Link failed because the file system
// has no hard links.
func linkUnsupported(err error) bool {
	return errors.Is(err, errors.ErrUnsupported)
}

package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// LockedError is Lock's error when another process holds the store's lock.
type LockedError struct {
	Path string
	// The holder, as it described itself; zero when it had not yet written
	// its description.
	PID   int
	Host  string
	Since time.Time
}

func (e *LockedError) Error() string {
	if e.PID == 0 {
		return fmt.Sprintf("store %s is in use by nxtcron serve (another process holds %s)", e.Path, e.Path+".lock")
	}
	return fmt.Sprintf("store %s is in use by nxtcron serve (pid %d on %s, since %s)",
		e.Path, e.PID, e.Host, e.Since.Format(time.RFC3339))
}

// holder is what the lock file says about the process that holds it.
type holder struct {
	PID   int       `json:"pid"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

// Lock takes the "one serve per file" lock of the store at path: an
// exclusive flock on path.lock, which records the holder's pid, host and
// start time. When another process holds it, Lock returns a *LockedError
// naming the holder. The kernel releases the lock when the process exits,
// however it exits; release gives it up before that. `nxtcron run` and the
// other verbs do not take it.
func Lock(path string) (release func() error, err error) {
	lockPath := path + ".lock"
	if err := os.MkdirAll(filepath.Dir(lockPath), 0o750); err != nil {
		return nil, fmt.Errorf("creating the directory of %s: %w", lockPath, err)
	}
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening lock file %s: %w", lockPath, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, lockedBy(path, lockPath)
		}
		return nil, fmt.Errorf("locking %s: %w", lockPath, err)
	}
	host, _ := os.Hostname()
	desc, err := json.Marshal(holder{PID: os.Getpid(), Host: host, Since: time.Now().UTC().Truncate(time.Second)})
	if err == nil {
		err = writeHolder(f, desc)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("writing lock file %s: %w", lockPath, err)
	}
	released := false
	return func() error {
		if released {
			return nil
		}
		released = true
		// The file stays: removing it would let a process that opened it
		// before the removal lock a file nobody else sees.
		return errors.Join(f.Truncate(0), unix.Flock(int(f.Fd()), unix.LOCK_UN), f.Close())
	}, nil
}

func writeHolder(f *os.File, desc []byte) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(append(desc, '\n'), 0); err != nil {
		return err
	}
	return f.Sync()
}

// lockedBy reads the holder's description. The holder writes it just after
// it took the lock, so an empty file is read again a few times.
func lockedBy(path, lockPath string) error {
	e := &LockedError{Path: path}
	for range 10 {
		b, err := os.ReadFile(lockPath)
		var h holder
		if err == nil && json.Unmarshal(b, &h) == nil && h.PID != 0 {
			e.PID, e.Host, e.Since = h.PID, h.Host, h.Since
			return e
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e
}

// lockMigrations takes path.migrate.lock exclusively, waiting (until ctx is
// done) while another process migrates.
func lockMigrations(ctx context.Context, path string) (unlock func() error, err error) {
	lockPath := path + ".migrate.lock"
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening migration lock file %s: %w", lockPath, err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return func() error {
				return errors.Join(unix.Flock(int(f.Fd()), unix.LOCK_UN), f.Close())
			}, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("locking %s: %w", lockPath, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("waiting for another process's migrations (%s): %w", lockPath, ctx.Err())
		case <-tick.C:
		}
	}
}

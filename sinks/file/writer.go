package file

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/sinks"
)

// tempPrefix starts the name of every temporary file; the job's name, the
// company and a random suffix follow: .nxtcron-tmp-<job>-<company>-<16 hex>.
const tempPrefix = ".nxtcron-tmp-"

// tempPattern matches the temporary files of one job and no other: the
// company and the suffix contain no dash, so the name splits one way only.
func tempPattern(job string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(tempPrefix+job) + `-[0-9]+-[0-9a-f]{16}$`)
}

func tempName(job string, company int64) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("drawing a temporary file name: %w", err)
	}
	return tempPrefix + job + "-" + strconv.FormatUint(uint64(company), 10) + "-" + hex.EncodeToString(b[:]), nil
}

// link is os.Link; tests replace it to act as a file system without hard
// links.
var link = os.Link

// writer is one company's file of one attempt.
type writer struct {
	s       *Sink
	log     *zap.Logger
	final   string
	tmp     string
	f       *os.File
	bw      *bufio.Writer
	enc     encoder
	rows    int64
	done    bool
	company int64
}

var _ sinks.Writer = (*writer)(nil)

func newWriter(s *Sink, run sinks.Run, company int64) (*writer, error) {
	final := filepath.Clean(s.path.expand(run, company))
	dir := filepath.Dir(final)
	if err := mkdirAll(dir); err != nil {
		return nil, err
	}
	f, tmp, err := createTemp(dir, run.Job, company)
	if err != nil {
		return nil, err
	}
	w := &writer{
		s:       s,
		log:     s.log.With(zap.Int64("company", company), zap.String("path", final)),
		final:   final,
		tmp:     tmp,
		f:       f,
		bw:      bufio.NewWriterSize(f, 64<<10),
		company: company,
	}
	w.enc = newEncoder(s.cfg.Format, w.bw, run.Fields)
	if err := w.enc.begin(); err != nil {
		w.discard()
		return nil, fmt.Errorf("writing %s: %w", tmp, err)
	}
	return w, nil
}

// createTemp creates and locks a new temporary file in dir. The lock tells
// a concurrent sweep that the file is in use; a sweep that removed the file
// between its creation and the lock is detected and the file made again.
func createTemp(dir, job string, company int64) (*os.File, string, error) {
	for range 10 {
		name, err := tempName(job, company)
		if err != nil {
			return nil, "", err
		}
		path := filepath.Join(dir, name)
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("creating temporary file: %w", err)
		}
		ok, err := tryLock(f)
		if err == nil && ok {
			var same bool
			same, err = sameFile(f, path)
			if err == nil && same {
				return f, path, nil
			}
		}
		_ = f.Close()
		if err != nil {
			_ = os.Remove(path)
			return nil, "", err
		}
	}
	return nil, "", fmt.Errorf("creating temporary file in %s: gave up after 10 attempts", dir)
}

func sameFile(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("checking temporary file: %w", err)
	}
	b, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking temporary file: %w", err)
	}
	return os.SameFile(a, b), nil
}

// mkdirAll creates dir and its missing parents (0755), syncing each new
// directory's parent so that the new entries survive a crash.
func mkdirAll(dir string) error {
	var missing []string
	for d := dir; ; {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("creating directory %s: %s is not a directory", dir, d)
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("creating directory %s: %w", dir, err)
		}
		missing = append(missing, d)
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("creating directory %s: %w", dir, err)
		}
		if err := syncDir(filepath.Dir(d)); err != nil {
			return fmt.Errorf("creating directory %s: %w", dir, err)
		}
	}
	return nil
}

// Write appends rows to the temporary file.
func (w *writer) Write(ctx context.Context, rows []sinks.Row) error {
	if w.done {
		return errors.New("writing to a committed or aborted file")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, r := range rows {
		if err := w.enc.row(r); err != nil {
			return fmt.Errorf("writing row %d to %s: %w", w.rows+1, w.tmp, err)
		}
		w.rows++
	}
	return nil
}

// Commit completes the file and puts it in place: flush, sync the file,
// link (or, with overwrite, rename) it to its final name, sync the
// directory. Only then does it return, and the pipeline move the
// watermark. A file that exists is never replaced without overwrite; that
// refusal is permanent. On any error the temporary file is removed.
func (w *writer) Commit(ctx context.Context, _ *sinks.Watermark) error {
	if w.done {
		return errors.New("committing a committed or aborted file")
	}
	if err := ctx.Err(); err != nil {
		w.discard()
		return fmt.Errorf("committing %s: %w", w.final, err)
	}
	if err := w.commit(); err != nil {
		w.discard()
		return err
	}
	w.done = true
	w.s.forget(w)
	w.log.Info("file written", zap.Int64("rows", w.rows))
	return nil
}

func (w *writer) commit() error {
	if err := w.enc.end(); err != nil {
		return fmt.Errorf("writing %s: %w", w.tmp, err)
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", w.tmp, err)
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", w.tmp, err)
	}
	if err := w.place(); err != nil {
		return err
	}
	// The final name holds the data now; closing releases the lock, and
	// the temporary name (still there after a link) can go.
	err := w.f.Close()
	w.f = nil
	if err != nil {
		return fmt.Errorf("closing %s: %w", w.final, err)
	}
	if err := os.Remove(w.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// The rows are in place; a leftover name is swept by a later run.
		w.log.Warn("removing temporary file", zap.String("temp", w.tmp), zap.Error(err))
	}
	if err := syncDir(filepath.Dir(w.final)); err != nil {
		return err
	}
	return nil
}

// place gives the temporary file its final name. Without overwrite it
// links, which fails if the name exists, so that two writers of one path
// cannot replace each other; on a file system without hard links it checks
// and then renames (a race only against another writer of the same path).
func (w *writer) place() error {
	if w.s.cfg.Overwrite {
		if err := os.Rename(w.tmp, w.final); err != nil {
			return fmt.Errorf("renaming temporary file to %s: %w", w.final, err)
		}
		return nil
	}
	err := link(w.tmp, w.final)
	if err == nil {
		return nil
	}
	if errors.Is(err, fs.ErrExist) {
		return w.refuse()
	}
	if !linkUnsupported(err) {
		return fmt.Errorf("linking temporary file to %s: %w", w.final, err)
	}
	if _, err := os.Lstat(w.final); err == nil {
		return w.refuse()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("checking %s: %w", w.final, err)
	}
	if err := os.Rename(w.tmp, w.final); err != nil {
		return fmt.Errorf("renaming temporary file to %s: %w", w.final, err)
	}
	return nil
}

func (w *writer) refuse() error {
	return sinks.Permanent(fmt.Errorf("%s already exists; not replacing it (set overwrite: true to allow)", w.final))
}

// Abort removes the temporary file. It is a no-op after Commit.
func (w *writer) Abort(context.Context) error {
	if w.done {
		return nil
	}
	return w.discard()
}

// discard closes and removes the temporary file; the writer is done.
func (w *writer) discard() error {
	w.done = true
	w.s.forget(w)
	var errs []error
	if w.f != nil {
		if err := w.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("closing %s: %w", w.tmp, err))
		}
		w.f = nil
	}
	if err := os.Remove(w.tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("removing %s: %w", w.tmp, err))
	}
	return errors.Join(errs...)
}

// sweep removes the temporary files that crashed attempts of the job left
// in the directories its path can name. A file is removed only when its
// name carries this job's name and no live writer holds its lock. Problems
// are logged, never fatal: a leftover file harms nothing but space.
func (s *Sink) sweep(ctx context.Context, job string) {
	if !canSweep {
		return
	}
	pattern := tempPattern(job)
	dirs, err := filepath.Glob(s.path.dirGlob(job))
	if err != nil {
		s.log.Warn("sweeping temporary files", zap.Error(err))
		return
	}
	for _, dir := range dirs {
		if ctx.Err() != nil {
			return
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			// Not a directory, or gone meanwhile.
			continue
		}
		removed := false
		for _, e := range entries {
			if !e.Type().IsRegular() || !pattern.MatchString(e.Name()) {
				continue
			}
			path := filepath.Join(dir, e.Name())
			ok, err := removeUnlocked(path)
			if err != nil {
				s.log.Warn("removing leftover temporary file", zap.String("temp", path), zap.Error(err))
				continue
			}
			if ok {
				removed = true
				s.log.Info("removed leftover temporary file", zap.String("temp", path))
			}
		}
		if removed {
			if err := syncDir(dir); err != nil {
				s.log.Warn("sweeping temporary files", zap.Error(err))
			}
		}
	}
}

// removeUnlocked removes path if no live writer holds its lock.
func removeUnlocked(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	ok, err := tryLock(f)
	if err != nil || !ok {
		return false, err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, nil
}

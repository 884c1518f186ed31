// Package spool holds a company's rows for sinks that deliver them only at
// commit (stdout, webhook): in memory up to a limit, then in a temporary
// file that is unlinked at once, so memory stays bounded whatever the
// import's size and a crash leaves nothing behind.
package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// Spool is a write-then-read buffer; its zero value holds nothing in
// memory (every byte goes to the file), so set Limit.
type Spool struct {
	// Limit is how many bytes stay in memory before the spool moves to a
	// temporary file.
	Limit int
	// Pattern names the temporary file (os.CreateTemp), e.g. "nxtcron-webhook-*".
	Pattern string

	mem bytes.Buffer
	f   *os.File
	fw  *bufio.Writer
}

// Write appends p.
func (s *Spool) Write(p []byte) error {
	if s.f == nil && s.mem.Len()+len(p) <= s.Limit {
		s.mem.Write(p)
		return nil
	}
	if s.f == nil {
		f, err := os.CreateTemp("", s.Pattern)
		if err != nil {
			return fmt.Errorf("creating spool file: %w", err)
		}
		// Unlinked at once where the system allows it; Release removes it
		// otherwise.
		_ = os.Remove(f.Name())
		s.f, s.fw = f, bufio.NewWriterSize(f, 64<<10)
		if _, err := s.fw.Write(s.mem.Bytes()); err != nil {
			return fmt.Errorf("writing spool file: %w", err)
		}
		s.mem = bytes.Buffer{}
	}
	if _, err := s.fw.Write(p); err != nil {
		return fmt.Errorf("writing spool file: %w", err)
	}
	return nil
}

// Reader reads everything written, from the start. Writing after it is
// not supported.
func (s *Spool) Reader() (io.Reader, error) {
	if s.f == nil {
		return bytes.NewReader(s.mem.Bytes()), nil
	}
	if err := s.fw.Flush(); err != nil {
		return nil, fmt.Errorf("writing spool file: %w", err)
	}
	if _, err := s.f.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("rewinding spool file: %w", err)
	}
	return s.f, nil
}

// Release forgets everything written and removes the file, if any.
func (s *Spool) Release() error {
	s.mem = bytes.Buffer{}
	if s.f == nil {
		return nil
	}
	name := s.f.Name()
	err := s.f.Close()
	s.f, s.fw = nil, nil
	if rerr := os.Remove(name); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = errors.Join(err, rerr)
	}
	if err != nil {
		return fmt.Errorf("releasing spool file: %w", err)
	}
	return nil
}

// InFile reports whether the spool has moved to its temporary file.
func (s *Spool) InFile() bool { return s.f != nil }

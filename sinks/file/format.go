package file

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nxtcron/nxtcron/sinks"
)

// encoder writes rows in one format. begin runs when the file is created,
// end before it is synced, so that a file with no rows is still complete.
type encoder interface {
	begin() error
	row(r sinks.Row) error
	end() error
}

func newEncoder(format string, w *bufio.Writer, fields []sinks.Field) encoder {
	switch format {
	case FormatCSV:
		names := make([]string, len(fields))
		for i, f := range fields {
			names[i] = f.Name
		}
		return &csvEncoder{w: csv.NewWriter(w), fields: names}
	case FormatJSON:
		return &jsonEncoder{w: w}
	default:
		return &ndjsonEncoder{w: w}
	}
}

// ndjsonEncoder writes each row on its own line as the API returned it.
type ndjsonEncoder struct {
	w   *bufio.Writer
	buf bytes.Buffer
}

func (e *ndjsonEncoder) begin() error { return nil }

func (e *ndjsonEncoder) row(r sinks.Row) error {
	line, err := oneLine(r, &e.buf)
	if err != nil {
		return err
	}
	if _, err := e.w.Write(line); err != nil {
		return err
	}
	return e.w.WriteByte('\n')
}

func (e *ndjsonEncoder) end() error { return nil }

// oneLine returns the row unchanged unless it spans lines; then its
// insignificant whitespace is removed (a newline inside a JSON string is
// always escaped, so a raw newline never belongs to a value).
func oneLine(r sinks.Row, buf *bytes.Buffer) ([]byte, error) {
	if len(r) == 0 {
		return nil, errors.New("empty row")
	}
	if !bytes.ContainsAny(r, "\r\n") {
		return r, nil
	}
	buf.Reset()
	if err := json.Compact(buf, r); err != nil {
		return nil, fmt.Errorf("compacting row: %w", err)
	}
	return buf.Bytes(), nil
}

// jsonEncoder writes one JSON array, a row per line.
type jsonEncoder struct {
	w *bufio.Writer
	n int
}

func (e *jsonEncoder) begin() error {
	return e.w.WriteByte('[')
}

func (e *jsonEncoder) row(r sinks.Row) error {
	if len(r) == 0 {
		return errors.New("empty row")
	}
	sep := ",\n"
	if e.n == 0 {
		sep = "\n"
	}
	if _, err := e.w.WriteString(sep); err != nil {
		return err
	}
	if _, err := e.w.Write(r); err != nil {
		return err
	}
	e.n++
	return nil
}

func (e *jsonEncoder) end() error {
	if e.n > 0 {
		if err := e.w.WriteByte('\n'); err != nil {
			return err
		}
	}
	_, err := e.w.WriteString("]\n")
	return err
}

// csvEncoder writes a header of the selected fields and a line per row:
// scalars as text, null or missing as empty, objects and arrays as compact
// JSON.
type csvEncoder struct {
	w      *csv.Writer
	fields []string
	record []string
	buf    bytes.Buffer
}

func (e *csvEncoder) begin() error {
	e.record = make([]string, len(e.fields))
	return e.w.Write(e.fields)
}

func (e *csvEncoder) row(r sinks.Row) error {
	r = bytes.TrimSpace(r)
	if len(r) == 0 || r[0] != '{' {
		return errors.New("decoding row: not a JSON object")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(r, &obj); err != nil {
		return fmt.Errorf("decoding row: %w", err)
	}
	for i, name := range e.fields {
		v, err := e.text(obj[name])
		if err != nil {
			return fmt.Errorf("field %s: %w", name, err)
		}
		e.record[i] = v
	}
	return e.w.Write(e.record)
}

func (e *csvEncoder) text(v json.RawMessage) (string, error) {
	if len(v) == 0 {
		return "", nil
	}
	switch v[0] {
	case 'n':
		return "", nil
	case '"':
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return "", err
		}
		return s, nil
	case '{', '[':
		e.buf.Reset()
		if err := json.Compact(&e.buf, v); err != nil {
			return "", err
		}
		return e.buf.String(), nil
	default:
		// Numbers keep the API's digits; true and false are already text.
		return string(v), nil
	}
}

func (e *csvEncoder) end() error {
	e.w.Flush()
	return e.w.Error()
}

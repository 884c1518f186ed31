package webhook

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/sinks"
	"github.com/nxtcron/nxtcron/sinks/spool"
)

// Headers of every POST.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderSignature      = "X-Nxtcron-Signature"
	HeaderSlot           = "X-Nxtcron-Slot"
	HeaderAttempt        = "X-Nxtcron-Attempt"
)

// writer holds one company's rows until Commit.
type writer struct {
	s       *Sink
	run     sinks.Run
	company int64
	log     *zap.Logger
	spool   spool.Spool
	rows    int
	buf     bytes.Buffer
	done    bool
}

var _ sinks.Writer = (*writer)(nil)

func newWriter(s *Sink, run sinks.Run, company int64) *writer {
	return &writer{
		s: s, run: run, company: company,
		log:   s.log.With(zap.Int64("company", company)),
		spool: spool.Spool{Limit: s.spoolLimit, Pattern: "nxtcron-webhook-*"},
	}
}

// Write adds the rows to the company's held rows, one per line.
func (w *writer) Write(ctx context.Context, rows []sinks.Row) error {
	if w.done {
		return errors.New("writing to a committed or aborted webhook writer")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for i, r := range rows {
		w.buf.Reset()
		switch {
		case len(bytes.TrimSpace(r)) == 0:
			return fmt.Errorf("row %d: empty row", w.rows+i+1)
		case bytes.ContainsAny(r, "\r\n"):
			if err := json.Compact(&w.buf, r); err != nil {
				return fmt.Errorf("row %d: compacting: %w", w.rows+i+1, err)
			}
		default:
			w.buf.Write(r)
		}
		w.buf.WriteByte('\n')
		if err := w.spool.Write(w.buf.Bytes()); err != nil {
			return err
		}
	}
	w.rows += len(rows)
	return nil
}

// Commit sends the company's rows in batches of batch_size, in order, each
// once the previous one is acknowledged. A company without rows sends
// nothing.
func (w *writer) Commit(ctx context.Context, _ *sinks.Watermark) error {
	if w.done {
		return errors.New("committing a committed or aborted webhook writer")
	}
	w.done = true
	defer w.s.forget(w)
	defer func() {
		if err := w.spool.Release(); err != nil {
			w.log.Warn("releasing held rows", zap.Error(err))
		}
	}()
	if w.rows == 0 {
		return nil
	}
	size := w.s.cfg.BatchSize
	batches := (w.rows + size - 1) / size
	r, err := w.spool.Reader()
	if err != nil {
		return err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	started := time.Now()
	for b := 1; b <= batches; b++ {
		var rows [][]byte
		for len(rows) < size {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 {
				rows = append(rows, bytes.TrimSuffix(line, []byte("\n")))
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("reading held rows: %w", err)
			}
		}
		if err := w.post(ctx, b, batches, rows); err != nil {
			return err
		}
	}
	w.log.Info("rows delivered", zap.Int("rows", w.rows), zap.Int("batches", batches), zap.Duration("took", time.Since(started)))
	return nil
}

// Abort drops the held rows. It is a no-op after Commit.
func (w *writer) Abort(context.Context) error {
	if w.done {
		return nil
	}
	w.done = true
	w.s.forget(w)
	return w.spool.Release()
}

// batch is the head of one POST's body, before the rows.
type batch struct {
	Job     string `json:"job"`
	RunID   string `json:"run_id"`
	Slot    string `json:"slot"`
	Attempt int    `json:"attempt"`
	Company int64  `json:"company"`
	Batch   int    `json:"batch"`
	Batches int    `json:"batches"`
}

// slotText is the slot as X-Nxtcron-Slot and the body show it: RFC 3339 in
// the job's zone.
func (w *writer) slotText() string {
	slot := w.run.Slot
	if w.run.Location != nil {
		slot = slot.In(w.run.Location)
	}
	return slot.Format(time.RFC3339)
}

// body is {"job":…,"run_id":…,"slot":…,"attempt":…,"company":…,"batch":…,
// "batches":…,"rows":[…]}, with the rows as the API returned them, and the
// bytes of the rows array alone (for the idempotency key).
func (w *writer) body(n, total int, rows [][]byte) (body, rowsJSON []byte, err error) {
	head, err := json.Marshal(batch{
		Job: w.run.Job, RunID: w.run.RunID, Slot: w.slotText(), Attempt: w.run.Attempt,
		Company: w.company, Batch: n, Batches: total,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("encoding batch %d: %w", n, err)
	}
	var b bytes.Buffer
	b.Write(head[:len(head)-1])
	b.WriteString(`,"rows":`)
	at := b.Len()
	b.WriteByte('[')
	for i, r := range rows {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(r)
	}
	b.WriteString("]}")
	out := b.Bytes()
	return out, out[at : len(out)-1], nil
}

// IdempotencyKey is the Idempotency-Key of a batch: the hex SHA-256 of the
// job, the slot (as an instant), the company, the batch number and the
// rows array. Every attempt of a slot that sends the same rows in the same
// batch sends the same key; a batch whose rows changed between attempts
// gets a new one, so that a receiver that drops repeated keys never drops
// rows it has not seen.
func IdempotencyKey(job string, slot time.Time, company int64, batch int, rows []byte) string {
	rowsSum := sha256.Sum256(rows)
	h := sha256.New()
	for _, part := range []string{job, slot.UTC().Format(time.RFC3339Nano), strconv.FormatInt(company, 10), strconv.Itoa(batch)} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	h.Write(rowsSum[:])
	return hex.EncodeToString(h.Sum(nil))
}

// Signature is X-Nxtcron-Signature for body: sha256=<hex HMAC-SHA256>.
func Signature(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// post sends one batch until the receiver acknowledges it, retrying what
// can be retried.
func (w *writer) post(ctx context.Context, n, total int, rows [][]byte) error {
	body, rowsJSON, err := w.body(n, total, rows)
	if err != nil {
		return err
	}
	key := IdempotencyKey(w.run.Job, w.run.Slot, w.company, n, rowsJSON)
	sig := Signature(w.s.secret, body)
	what := fmt.Sprintf("posting batch %d/%d of company %d to %s", n, total, w.company, w.s.where)
	for attempt := 1; ; attempt++ {
		res := w.send(ctx, body, key, sig)
		if res.err == nil {
			if attempt > 1 {
				w.log.Info("batch delivered after retries", zap.Int("batch", n), zap.Int("attempts", attempt))
			}
			return nil
		}
		if err := context.Cause(ctx); err != nil {
			return fmt.Errorf("%s: %w (%w)", what, err, res.err)
		}
		if !res.retryable {
			w.log.Warn("batch refused", zap.Int("batch", n), zap.Error(res.err))
			return sinks.Permanent(fmt.Errorf("%s: %w", what, res.err))
		}
		if attempt >= w.s.maxAttempts {
			w.log.Warn("batch not delivered", zap.Int("batch", n), zap.Int("attempts", attempt), zap.Error(res.err))
			return fmt.Errorf("%s: %w (gave up after %d attempts)", what, res.err, attempt)
		}
		delay := res.retryAfter
		if delay <= 0 {
			delay = w.backoff(attempt)
		}
		if deadline, ok := ctx.Deadline(); ok && time.Now().Add(delay).After(deadline) {
			return fmt.Errorf("%s: %w (the next attempt, in %s, would start after the deadline)", what, res.err, delay.Round(time.Millisecond))
		}
		w.log.Warn("batch not delivered; retrying", zap.Int("batch", n), zap.Int("attempt", attempt),
			zap.Duration("delay", delay), zap.Error(res.err))
		if err := w.s.sleep(ctx, delay); err != nil {
			return fmt.Errorf("%s: %w (%w)", what, err, res.err)
		}
	}
}

// backoff is the wait before attempt n+1: full jitter over an exponential
// capped at maxBackoff.
func (w *writer) backoff(n int) time.Duration {
	d := w.s.maxBackoff
	if n-1 < 32 {
		d = min(w.s.maxBackoff, w.s.baseBackoff<<(n-1))
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// result is the outcome of one POST.
type result struct {
	err        error
	retryable  bool
	retryAfter time.Duration
}

// send POSTs one body once.
func (w *writer) send(ctx context.Context, body []byte, key, sig string) result {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.s.url, bytes.NewReader(body))
	if err != nil {
		return result{err: fmt.Errorf("building the request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "nxtcron")
	req.Header.Set(HeaderIdempotencyKey, key)
	req.Header.Set(HeaderSignature, sig)
	req.Header.Set(HeaderSlot, w.slotText())
	req.Header.Set(HeaderAttempt, strconv.Itoa(w.run.Attempt))
	resp, err := w.s.client.Do(req)
	if err != nil {
		// url.Error quotes the whole URL, query included: keep its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ue != nil && ue.Timeout() && ctx.Err() == nil {
			return result{err: fmt.Errorf("no response within %s", time.Duration(w.s.cfg.Timeout)), retryable: true}
		}
		return result{err: err, retryable: true}
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	code := resp.StatusCode
	if code >= 200 && code < 300 {
		return result{}
	}
	msg := "HTTP " + resp.Status
	if text := oneLine(snippet, 200); text != "" {
		msg += ": " + text
	}
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return result{err: errors.New(msg), retryable: true, retryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now())}
	case code >= 300 && code < 400:
		return result{err: fmt.Errorf("%s (redirect to %q not followed; set url to the final address)", msg, redirectTarget(resp))}
	}
	return result{err: errors.New(msg)}
}

// redirectTarget is a redirect's Location without its query.
func redirectTarget(resp *http.Response) string {
	loc, err := resp.Location()
	if err != nil {
		return ""
	}
	loc.RawQuery, loc.User = "", nil
	return loc.String()
}

// oneLine is the start of a response body as one printable line.
func oneLine(b []byte, limit int) string {
	s := strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return ' '
		}
		return r
	}, string(b))
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return s
}

// retryAfter parses Retry-After (seconds or an HTTP date); 0 when absent or
// unparsable.
func retryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

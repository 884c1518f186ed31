package jobs

import (
	"context"
	"errors"

	"github.com/nxtcron/nxtcron/bnxt"
)

// prefetchPages is how many fetched pages may wait for the sink while it
// writes one (a further one may be held by the fetcher, waiting for room):
// the next page's request overlaps the current page's write, and memory stays
// a few pages whatever the size of the import.
const prefetchPages = 1

// fetched is a page, or the error that ended the pages (io.EOF after the
// last one, ErrInterrupted on shutdown).
type fetched struct {
	page *bnxt.Page
	err  error
}

// prefetcher fetches the pages of one company in its own goroutine, ahead
// of the sink. It starts no new page once stop is closed (the request in
// flight finishes: a request the client abandons holds its slot at the
// server), and ends at the first error.
type prefetcher struct {
	out    chan fetched
	cancel context.CancelFunc
	done   chan struct{}
}

// prefetch starts fetching pages under ctx.
func prefetch(ctx context.Context, pages pageSource, stop <-chan struct{}) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	p := &prefetcher{out: make(chan fetched, prefetchPages), cancel: cancel, done: make(chan struct{})}
	go p.run(ctx, pages, stop)
	return p
}

func (p *prefetcher) run(ctx context.Context, pages pageSource, stop <-chan struct{}) {
	defer close(p.done)
	defer close(p.out)
	for n := 0; ; n++ {
		if n > 0 {
			select {
			case <-stop:
				p.send(ctx, fetched{err: ErrInterrupted})
				return
			default:
			}
		}
		page, err := pages.Next(ctx)
		if !p.send(ctx, fetched{page: page, err: err}) || err != nil {
			return
		}
	}
}

// send hands f to the sink's side, unless the import is abandoned first.
func (p *prefetcher) send(ctx context.Context, f fetched) bool {
	select {
	case p.out <- f:
		return true
	case <-ctx.Done():
		return false
	}
}

// next returns the next page; the error ends the pages (io.EOF after the
// last one). ctx is the import's.
func (p *prefetcher) next(ctx context.Context) (*bnxt.Page, error) {
	f, ok := <-p.out
	if !ok {
		// The fetcher gave up on sending: only when ctx ended.
		if err := context.Cause(ctx); err != nil {
			return nil, err
		}
		return nil, errors.New("page fetcher ended without an error")
	}
	return f.page, f.err
}

// close abandons what is still being fetched and waits for the fetcher to
// end.
func (p *prefetcher) close() {
	p.cancel()
	<-p.done
}

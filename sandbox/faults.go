package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Endpoints a fault can target.
const (
	EndpointGraphQL        = "graphql"
	EndpointGraphQLService = "graphql-service"
	EndpointToken          = "token"
)

// Fault kinds.
const (
	FaultUnauthorized     = "401"
	FaultTooManyRequests  = "429"
	FaultInternalError    = "500"
	FaultBadGateway       = "502"
	FaultGraphQLError     = "graphql_error"
	FaultOutstandingLimit = "outstanding_limit"
	FaultSlow             = "slow"
	FaultTruncated        = "truncated"
)

// Phases of a slow fault on the token endpoint.
const (
	// PhaseBefore holds the request before the provider handles it.
	PhaseBefore = "before"
	// PhaseAfterRotate lets the provider commit the grant (a refresh token
	// rotation is stored, the old token consumed) and then holds the answer.
	PhaseAfterRotate = "after_rotate"
)

// Defaults of a fault's optional fields.
const (
	DefaultFaultDelay      = 2 * time.Second
	DefaultFaultRetryAfter = 1
	DefaultFaultSeed       = 1
)

var (
	graphQLFaultKinds = []string{FaultUnauthorized, FaultTooManyRequests, FaultInternalError, FaultBadGateway, FaultGraphQLError, FaultOutstandingLimit, FaultSlow, FaultTruncated}
	tokenFaultKinds   = []string{FaultUnauthorized, FaultTooManyRequests, FaultInternalError, FaultBadGateway, FaultSlow, FaultTruncated}
)

// Fault is an injected failure. It applies to the next Next requests of its
// endpoint, or to each request with probability Rate. An empty Endpoint
// means both GraphQL endpoints.
//
// Rate draws from a PCG generator seeded with Seed (default 1), one draw per
// request the fault sees, so the same sequence of requests is faulted the
// same way in every run.
type Fault struct {
	Endpoint string  `json:"endpoint,omitempty"`
	Kind     string  `json:"kind"`
	Next     int     `json:"next,omitempty"`
	Rate     float64 `json:"rate,omitempty"`
	Seed     uint64  `json:"seed,omitempty"`
	// Phase is for slow faults on the token endpoint: before (default) or
	// after_rotate.
	Phase string `json:"phase,omitempty"`
	// Delay is how long a slow fault holds the request (default 2s).
	Delay time.Duration `json:"-"`
	// RetryAfter is the Retry-After of a 429 fault in seconds (default 1).
	RetryAfter int `json:"retry_after,omitempty"`
}

// UnmarshalJSON reads a fault; delay is a duration string such as "3s" or a
// number of seconds.
func (f *Fault) UnmarshalJSON(b []byte) error {
	type plain Fault
	var w struct {
		plain
		Delay json.RawMessage `json:"delay,omitempty"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return err
	}
	*f = Fault(w.plain)
	if len(w.Delay) > 0 && string(w.Delay) != "null" {
		d, err := parseDuration(w.Delay)
		if err != nil {
			return fmt.Errorf("delay: %w", err)
		}
		f.Delay = d
	}
	return nil
}

// MarshalJSON writes a fault with its delay as a duration string.
func (f Fault) MarshalJSON() ([]byte, error) {
	type plain Fault
	w := struct {
		plain
		Delay string `json:"delay,omitempty"`
	}{plain: plain(f)}
	if f.Delay > 0 {
		w.Delay = f.Delay.String()
	}
	return json.Marshal(w)
}

// Validate reports what is wrong with f.
func (f Fault) Validate() error {
	var errs []error
	kinds := graphQLFaultKinds
	switch f.Endpoint {
	case "", EndpointGraphQL, EndpointGraphQLService:
	case EndpointToken:
		kinds = tokenFaultKinds
	default:
		errs = append(errs, fmt.Errorf("endpoint %q: must be %s, %s or %s", f.Endpoint, EndpointGraphQL, EndpointGraphQLService, EndpointToken))
	}
	if !slices.Contains(kinds, f.Kind) {
		errs = append(errs, fmt.Errorf("kind %q: must be one of %v for this endpoint", f.Kind, kinds))
	}
	switch {
	case f.Next < 0:
		errs = append(errs, fmt.Errorf("next %d: must not be negative", f.Next))
	case f.Rate < 0 || f.Rate > 1:
		errs = append(errs, fmt.Errorf("rate %g: must be between 0 and 1", f.Rate))
	case f.Next > 0 && f.Rate > 0:
		errs = append(errs, errors.New("next and rate exclude each other"))
	case f.Next == 0 && f.Rate == 0:
		errs = append(errs, errors.New("next or rate is required"))
	}
	switch f.Phase {
	case "":
	case PhaseBefore, PhaseAfterRotate:
		if f.Endpoint != EndpointToken || f.Kind != FaultSlow {
			errs = append(errs, errors.New("phase: only for slow faults on the token endpoint"))
		}
	default:
		errs = append(errs, fmt.Errorf("phase %q: must be %s or %s", f.Phase, PhaseBefore, PhaseAfterRotate))
	}
	if f.Delay < 0 {
		errs = append(errs, fmt.Errorf("delay %s: must not be negative", f.Delay))
	}
	if f.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("retry_after %d: must not be negative", f.RetryAfter))
	}
	return errors.Join(errs...)
}

func (f Fault) withDefaults() Fault {
	if f.Kind == FaultSlow && f.Delay == 0 {
		f.Delay = DefaultFaultDelay
	}
	if f.Kind == FaultTooManyRequests && f.RetryAfter == 0 {
		f.RetryAfter = DefaultFaultRetryAfter
	}
	if f.Rate > 0 && f.Seed == 0 {
		f.Seed = DefaultFaultSeed
	}
	if f.Endpoint == EndpointToken && f.Kind == FaultSlow && f.Phase == "" {
		f.Phase = PhaseBefore
	}
	return f
}

type faultRule struct {
	Fault
	rng *rand.Rand // for Rate
}

func (r *faultRule) matches(endpoint string) bool {
	if r.Endpoint == "" {
		return endpoint == EndpointGraphQL || endpoint == EndpointGraphQLService
	}
	return r.Endpoint == endpoint
}

// faultSet holds the active faults in the order they were added.
type faultSet struct {
	mu    sync.Mutex
	rules []*faultRule
}

func (s *faultSet) add(f Fault) error {
	if err := f.Validate(); err != nil {
		return err
	}
	f = f.withDefaults()
	r := &faultRule{Fault: f}
	if f.Rate > 0 {
		r.rng = rand.New(rand.NewPCG(f.Seed, 0))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = append(s.rules, r)
	return nil
}

func (s *faultSet) clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = nil
}

func (s *faultSet) list() []Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Fault, 0, len(s.rules))
	for _, r := range s.rules {
		out = append(out, r.Fault)
	}
	return out
}

// take returns the fault for a request to endpoint, if any: the first rule
// that fires. A rule with Next is used up after that many requests; every
// rate rule the request reaches draws once.
func (s *faultSet) take(endpoint string) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, r := range s.rules {
		if !r.matches(endpoint) {
			continue
		}
		if r.Next > 0 {
			f := r.Fault
			r.Next--
			if r.Next == 0 {
				s.rules = slices.Delete(s.rules, i, i+1)
			}
			return &f
		}
		if r.rng.Float64() < r.Rate {
			f := r.Fault
			return &f
		}
	}
	return nil
}

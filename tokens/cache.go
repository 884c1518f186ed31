package tokens

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/store"
)

// accessPayload is what an access token's ciphertext holds: the token and
// when to renew it, so that every replica renews at the same moment.
type accessPayload struct {
	Token     string    `json:"token"`
	RenewAt   time.Time `json:"renew_at"`
	FetchedAt time.Time `json:"fetched_at"`
}

// sealAccess turns a cache entry into the store's form.
func sealAccess(k *Keyring, e entry) (*store.AccessToken, error) {
	plain, err := json.Marshal(accessPayload{Token: e.Token.Value.Reveal(), RenewAt: e.RenewAt, FetchedAt: e.FetchedAt})
	if err != nil {
		return nil, fmt.Errorf("encoding an access token: %w", err)
	}
	c, err := k.Seal(purposeAccess, plain)
	if err != nil {
		return nil, err
	}
	return &store.AccessToken{Cipher: c, Hash: e.Token.Hash, Expiry: e.Token.Expiry}, nil
}

// accessCodec opens stored access tokens, remembering the last one it
// opened so that the hot path does not decrypt on every request.
type accessCodec struct {
	keys *Keyring

	mu   sync.Mutex
	last map[string]entry // connection -> last opened entry
}

func newAccessCodec(k *Keyring) *accessCodec {
	return &accessCodec{keys: k, last: map[string]entry{}}
}

// open returns the entry of a stored access token.
func (c *accessCodec) open(connection string, a *store.AccessToken) (entry, error) {
	c.mu.Lock()
	if e, ok := c.last[connection]; ok && e.Token.Hash == a.Hash && e.Token.Expiry.Equal(a.Expiry) {
		c.mu.Unlock()
		return e, nil
	}
	c.mu.Unlock()
	plain, err := c.keys.Open(purposeAccess, a.Cipher)
	if err != nil {
		return entry{}, err
	}
	var p accessPayload
	if err := json.Unmarshal(plain, &p); err != nil {
		return entry{}, fmt.Errorf("decoding a stored access token: %w", err)
	}
	if HashToken(p.Token) != a.Hash {
		return entry{}, errors.New("a stored access token does not match its hash")
	}
	e := entry{
		Token:     Token{Value: config.Secret(p.Token), Expiry: a.Expiry, Hash: a.Hash},
		RenewAt:   p.RenewAt,
		FetchedAt: p.FetchedAt,
	}
	c.mu.Lock()
	c.last[connection] = e
	c.mu.Unlock()
	return e, nil
}

// lastOpened returns the entry open last returned for connection, if any:
// while the store cannot be read, a token still valid is used from memory.
func (c *accessCodec) lastOpened(connection string) (entry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.last[connection]
	return e, ok
}

// remember records an entry this process obtained itself.
func (c *accessCodec) remember(connection string, e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.last[connection] = e
}

// forget drops the remembered entry of connection if its hash is hash
// (after a 401).
func (c *accessCodec) forget(connection, hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.last[connection]; ok && e.Token.Hash == hash {
		delete(c.last, connection)
	}
}

// storeCache is the cache of client-credentials connections: the store's
// access-token columns, encrypted, shared by every job and replica.
type storeCache struct {
	st    store.Store
	codec *accessCodec
}

var _ cache = (*storeCache)(nil)

func (c *storeCache) Load(ctx context.Context, connection string) (entry, bool, error) {
	rec, err := c.st.Token(ctx, connection)
	if errors.Is(err, store.ErrNotFound) {
		return entry{}, false, nil
	}
	if err != nil {
		// The store is unreachable: the token this process saw last
		// serves while it is valid, rather than a token request per call.
		if e, ok := c.codec.lastOpened(connection); ok {
			return e, true, nil
		}
		return entry{}, false, err
	}
	if rec.Access == nil {
		return entry{}, false, nil
	}
	e, err := c.codec.open(connection, rec.Access)
	if err != nil {
		return entry{}, false, err
	}
	return e, true, nil
}

func (c *storeCache) Save(ctx context.Context, connection string, e entry) error {
	c.codec.remember(connection, e)
	a, err := sealAccess(c.codec.keys, e)
	if err != nil {
		return err
	}
	return c.st.PutAccessToken(ctx, connection, *a)
}

func (c *storeCache) Invalidate(ctx context.Context, connection, hash string) error {
	c.codec.forget(connection, hash)
	return c.st.InvalidateAccessToken(ctx, connection, hash)
}

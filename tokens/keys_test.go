package tokens

import (
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/store"
	"github.com/nxtcron/nxtcron/store/sqlite"
)

func rawKey(b byte) []byte {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func b64(k []byte) string { return base64.StdEncoding.EncodeToString(k) }

func TestParseKeys(t *testing.T) {
	good := b64(rawKey(1))
	tests := []struct {
		name        string
		text        string
		ids         int
		errContains string
	}{
		{name: "one", text: good + "\n", ids: 1},
		{name: "comments and blanks", text: "# keys\n\n  " + good + "  \n# old:\n" + b64(rawKey(2)) + "\n", ids: 2},
		{name: "empty", text: "# nothing\n\n", errContains: "no encryption key"},
		{name: "not base64", text: good + "\nnot-a-key!\n", errContains: "line 2: want a base64 32-byte key"},
		{name: "short", text: b64([]byte("short")), errContains: "line 1: want a base64 32-byte key"},
		{name: "twice", text: good + "\n" + good, errContains: "the same key is listed twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKeys(tt.text)
			if tt.errContains != "" {
				require.ErrorContains(t, err, tt.errContains)
				require.NotContains(t, err.Error(), "not-a-key", "errors never echo a key line")
				return
			}
			require.NoError(t, err)
			require.Len(t, k.IDs(), tt.ids)
			for _, id := range k.IDs() {
				require.Len(t, id, 8)
			}
		})
	}
}

func TestSealOpen(t *testing.T) {
	k1, err := NewKeyring([][]byte{rawKey(1)})
	require.NoError(t, err)
	k21, err := NewKeyring([][]byte{rawKey(2), rawKey(1)})
	require.NoError(t, err)
	secret := []byte("a-refresh-token-value")

	c, err := k1.Seal(purposeRefresh, secret)
	require.NoError(t, err)
	require.NotContains(t, string(c), string(secret))
	require.Equal(t, k1.SealingKeyID(), CipherKeyID(c))
	c2, err := k1.Seal(purposeRefresh, secret)
	require.NoError(t, err)
	require.NotEqual(t, c, c2, "a fresh nonce each time")

	plain, err := k1.Open(purposeRefresh, c)
	require.NoError(t, err)
	require.Equal(t, secret, plain)
	plain, err = k21.Open(purposeRefresh, c)
	require.NoError(t, err, "any configured key opens")
	require.Equal(t, secret, plain)

	_, err = k1.Open(purposeAccess, c)
	require.ErrorIs(t, err, ErrWrongKey, "a ciphertext cannot pass for another purpose")

	k2only, err := NewKeyring([][]byte{rawKey(2)})
	require.NoError(t, err)
	_, err = k2only.Open(purposeRefresh, c)
	require.ErrorIs(t, err, ErrWrongKey)
	require.ErrorContains(t, err, "sealed with key "+k1.SealingKeyID()+", which is not configured (configured: "+k2only.SealingKeyID()+")")

	bad := append([]byte(nil), c...)
	bad[len(bad)-1] ^= 1
	_, err = k1.Open(purposeRefresh, bad)
	require.ErrorIs(t, err, ErrWrongKey, "tampering is detected")
	_, err = k1.Open(purposeRefresh, []byte("plain text"))
	require.ErrorIs(t, err, ErrWrongKey)
	require.Empty(t, CipherKeyID([]byte("plain text")))
}

func openStore(t *testing.T) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "nxtcron.db"), sqlite.Options{Migrate: true})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, st.Close()) })
	return st
}

func TestOpenKeys(t *testing.T) {
	ctx := context.Background()
	t.Run("generated for an embedded store, then reused", func(t *testing.T) {
		st := openStore(t)
		path := filepath.Join(t.TempDir(), "var", "nxtcron.keys")
		core, logs := observer.New(zapcore.InfoLevel)
		k, err := OpenKeys(ctx, st, KeyOptions{Store: config.Store{EncryptionKeysFile: path}, Generate: true, Logger: zap.New(core)})
		require.NoError(t, err)
		fi, err := os.Stat(path)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
		require.Equal(t, 1, logs.FilterMessageSnippet("generated a new encryption key file").Len())
		check, err := st.KeyCheck(ctx)
		require.NoError(t, err)
		require.Equal(t, k.SealingKeyID(), CipherKeyID(check))

		again, err := OpenKeys(ctx, st, KeyOptions{Store: config.Store{EncryptionKeysFile: path}, Generate: true})
		require.NoError(t, err)
		require.Equal(t, k.IDs(), again.IDs())
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		for _, e := range logs.All() {
			require.NotContains(t, e.Message, strings.TrimSpace(string(data)))
		}
	})
	t.Run("missing file without generation (shared store)", func(t *testing.T) {
		st := openStore(t)
		path := filepath.Join(t.TempDir(), "nxtcron.keys")
		_, err := OpenKeys(ctx, st, KeyOptions{Store: config.Store{EncryptionKeysFile: path}})
		require.ErrorIs(t, err, ErrNoKeys)
		require.ErrorContains(t, err, "every replica needs the same keys")
		require.NoFileExists(t, path)
		_, err = st.KeyCheck(ctx)
		require.ErrorIs(t, err, store.ErrNotFound, "nothing written")
	})
	t.Run("missing file but the store has tokens", func(t *testing.T) {
		st := openStore(t)
		path := filepath.Join(t.TempDir(), "nxtcron.keys")
		_, err := OpenKeys(ctx, st, KeyOptions{Store: config.Store{EncryptionKeysFile: path}, Generate: true})
		require.NoError(t, err)
		require.NoError(t, os.Remove(path))
		_, err = OpenKeys(ctx, st, KeyOptions{Store: config.Store{EncryptionKeysFile: path}, Generate: true})
		require.ErrorContains(t, err, "is missing, but the store holds tokens encrypted with key")
		require.NoFileExists(t, path, "no new key over an existing store")
	})
	t.Run("inline keys; a wrong key is refused", func(t *testing.T) {
		st := openStore(t)
		k, err := OpenKeys(ctx, st, KeyOptions{Store: config.Store{EncryptionKeys: []config.Secret{config.Secret(b64(rawKey(1)))}}})
		require.NoError(t, err)
		_, err = OpenKeys(ctx, st, KeyOptions{Store: config.Store{EncryptionKeys: []config.Secret{config.Secret(b64(rawKey(2)))}}})
		require.ErrorContains(t, err, "do not match the store's: its tokens are encrypted with key "+k.SealingKeyID())
		require.NotContains(t, err.Error(), b64(rawKey(2)))
		// The right key after a new one (a rotation in progress) works.
		_, err = OpenKeys(ctx, st, KeyOptions{Store: config.Store{EncryptionKeys: []config.Secret{config.Secret(b64(rawKey(2))), config.Secret(b64(rawKey(1)))}}})
		require.NoError(t, err)
	})
	t.Run("bad key file", func(t *testing.T) {
		st := openStore(t)
		path := filepath.Join(t.TempDir(), "nxtcron.keys")
		require.NoError(t, os.WriteFile(path, []byte("garbage\n"), 0o600))
		_, err := OpenKeys(ctx, st, KeyOptions{Store: config.Store{EncryptionKeysFile: path}, Generate: true})
		require.ErrorContains(t, err, "line 1: want a base64 32-byte key")
	})
}

// TestRekey: after a rekey every stored ciphertext names the first key, and
// the old key can go.
func TestRekey(t *testing.T) {
	r := newRig(t)
	r.enrollChain()
	_, err := source(t, r.replica("replica-a"), "service").Token(context.Background())
	require.NoError(t, err)
	refresh := r.storedRefresh()
	oldID := r.keys.SealingKeyID()

	both, err := NewKeyring([][]byte{rawKey(9), r.keys.keys[0].raw})
	require.NoError(t, err)
	n, err := Rekey(context.Background(), r.st, both)
	require.NoError(t, err)
	require.Equal(t, 3, n, "a refresh token, an access token, the key check")
	newOnly, err := NewKeyring([][]byte{rawKey(9)})
	require.NoError(t, err)
	states, err := r.st.TokenStates(context.Background())
	require.NoError(t, err)
	for _, st := range states {
		if st.RefreshCipher != nil {
			require.Equal(t, newOnly.SealingKeyID(), CipherKeyID(st.RefreshCipher))
			plain, err := newOnly.Open(purposeRefresh, st.RefreshCipher)
			require.NoError(t, err)
			require.Equal(t, refresh, string(plain))
		}
		if st.Access != nil {
			require.Equal(t, newOnly.SealingKeyID(), CipherKeyID(st.Access.Cipher))
		}
	}
	_, err = OpenKeys(context.Background(), r.st, KeyOptions{Store: config.Store{EncryptionKeys: []config.Secret{config.Secret(b64(rawKey(9)))}}})
	require.NoError(t, err, "the old key %s is no longer needed", oldID)

	// A rekey without the key a ciphertext needs changes nothing.
	other, err := NewKeyring([][]byte{rawKey(7)})
	require.NoError(t, err)
	_, err = Rekey(context.Background(), r.st, other)
	require.ErrorIs(t, err, ErrWrongKey)
	require.Equal(t, newOnly.SealingKeyID(), CipherKeyID(r.state().RefreshCipher))
}

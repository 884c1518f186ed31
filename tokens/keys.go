package tokens

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/nxtcron/nxtcron/config"
	"github.com/nxtcron/nxtcron/store"
)

// Encryption at rest: every token the store holds is sealed with AES-256-GCM
// under the first configured key. A ciphertext is
//
//	version (1 byte, 1) | key id (4 bytes) | nonce (12 bytes) | sealed data and tag
//
// and its header and purpose (refresh token, access token, ...) are the
// additional data, so a ciphertext cannot pass for another kind. The key id
// is the first 4 bytes of SHA-256("nxtcron key id v1" || key): it names the
// key (as 8 hex digits) without revealing it, so that `tokens rekey` and
// errors can say which key a ciphertext needs.

// Purposes of sealed values.
const (
	purposeRefresh  = "refresh-token"
	purposeAccess   = "access-token"
	purposeKeyCheck = "key-check"
	purposeSession  = "enroll-session"
)

const (
	sealVersion = 1
	keyIDLen    = 4
	keyLen      = 32
	headerLen   = 1 + keyIDLen
	// keyCheckValue is what the key-check row holds, sealed.
	keyCheckValue = "nxtcron key check v1"
)

// Errors of key handling; match with errors.Is.
var (
	// ErrWrongKey: a ciphertext was sealed with a key that is not
	// configured, or does not open with the key its id names.
	ErrWrongKey = errors.New("ciphertext does not open with the configured encryption keys")
	// ErrNoKeys: no encryption key is configured or generated.
	ErrNoKeys = errors.New("no encryption key")
)

// Keyring holds the encryption keys: the first seals, every one opens.
type Keyring struct {
	keys []sealKey
}

type sealKey struct {
	id   [keyIDLen]byte
	raw  []byte
	aead cipher.AEAD
	// link signs enrollment links (HKDF of the key).
	link []byte
}

// NewKeyring makes a Keyring of 32-byte keys; the first one seals.
func NewKeyring(keys [][]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	k := &Keyring{}
	seen := map[[keyIDLen]byte]bool{}
	for i, raw := range keys {
		if len(raw) != keyLen {
			return nil, fmt.Errorf("key %d: %d bytes, want %d", i+1, len(raw), keyLen)
		}
		id := keyID(raw)
		if seen[id] {
			return nil, fmt.Errorf("key %d: the same key is listed twice (id %x)", i+1, id)
		}
		seen[id] = true
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		link, err := hkdf.Key(sha256.New, raw, nil, "nxtcron enrollment links v1", 32)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		k.keys = append(k.keys, sealKey{id: id, raw: append([]byte(nil), raw...), aead: aead, link: link})
	}
	return k, nil
}

func keyID(raw []byte) [keyIDLen]byte {
	sum := sha256.Sum256(append([]byte("nxtcron key id v1"), raw...))
	var id [keyIDLen]byte
	copy(id[:], sum[:keyIDLen])
	return id
}

// ParseKeys reads keys in the key-file format: one base64 32-byte key per
// line, the first seals; blank lines and lines starting with # are
// ignored. Errors name the line, never its content.
func ParseKeys(text string) (*Keyring, error) {
	var keys [][]byte
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(raw) != keyLen {
			return nil, fmt.Errorf("line %d: want a base64 32-byte key (make one with: openssl rand -base64 32)", i+1)
		}
		keys = append(keys, raw)
	}
	if len(keys) == 0 {
		return nil, ErrNoKeys
	}
	return NewKeyring(keys)
}

// IDs lists the key ids, the sealing key first.
func (k *Keyring) IDs() []string {
	ids := make([]string, len(k.keys))
	for i, key := range k.keys {
		ids[i] = hex.EncodeToString(key.id[:])
	}
	return ids
}

// SealingKeyID is the id of the key that seals.
func (k *Keyring) SealingKeyID() string { return hex.EncodeToString(k.keys[0].id[:]) }

func additionalData(purpose string, header []byte) []byte {
	return append([]byte("nxtcron:"+purpose+":"), header...)
}

// Seal encrypts plaintext for purpose with the first key.
func (k *Keyring) Seal(purpose string, plaintext []byte) ([]byte, error) {
	key := k.keys[0]
	out := make([]byte, headerLen, headerLen+key.aead.NonceSize()+len(plaintext)+key.aead.Overhead())
	out[0] = sealVersion
	copy(out[1:headerLen], key.id[:])
	nonce := make([]byte, key.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("sealing: %w", err)
	}
	out = append(out, nonce...)
	return key.aead.Seal(out, nonce, plaintext, additionalData(purpose, out[:headerLen])), nil
}

// Open decrypts a ciphertext of purpose with the key its id names.
func (k *Keyring) Open(purpose string, ciphertext []byte) ([]byte, error) {
	key, err := k.keyFor(ciphertext)
	if err != nil {
		return nil, err
	}
	ns := key.aead.NonceSize()
	if len(ciphertext) < headerLen+ns+key.aead.Overhead() {
		return nil, fmt.Errorf("opening a %s: ciphertext too short: %w", purpose, ErrWrongKey)
	}
	nonce := ciphertext[headerLen : headerLen+ns]
	plain, err := key.aead.Open(nil, nonce, ciphertext[headerLen+ns:], additionalData(purpose, ciphertext[:headerLen]))
	if err != nil {
		return nil, fmt.Errorf("opening a %s sealed with key %s: %w", purpose, CipherKeyID(ciphertext), ErrWrongKey)
	}
	return plain, nil
}

func (k *Keyring) keyFor(ciphertext []byte) (sealKey, error) {
	if len(ciphertext) < headerLen || ciphertext[0] != sealVersion {
		return sealKey{}, fmt.Errorf("not a nxtcron ciphertext (unknown format): %w", ErrWrongKey)
	}
	for _, key := range k.keys {
		if bytes.Equal(key.id[:], ciphertext[1:headerLen]) {
			return key, nil
		}
	}
	return sealKey{}, fmt.Errorf("sealed with key %s, which is not configured (configured: %s): %w",
		CipherKeyID(ciphertext), strings.Join(k.IDs(), ", "), ErrWrongKey)
}

// reseal opens a ciphertext of any purpose known to the store and seals it
// again with the first key (tokens rekey).
func (k *Keyring) reseal(ciphertext []byte) ([]byte, error) {
	if _, err := k.keyFor(ciphertext); err != nil {
		return nil, err
	}
	for _, purpose := range []string{purposeRefresh, purposeAccess, purposeKeyCheck} {
		if plain, err := k.Open(purpose, ciphertext); err == nil {
			return k.Seal(purpose, plain)
		}
	}
	return nil, fmt.Errorf("a ciphertext sealed with key %s does not open: %w", CipherKeyID(ciphertext), ErrWrongKey)
}

// CipherKeyID names the key a ciphertext was sealed with (8 hex digits), or
// "" when it is not a nxtcron ciphertext.
func CipherKeyID(ciphertext []byte) string {
	if len(ciphertext) < headerLen || ciphertext[0] != sealVersion {
		return ""
	}
	return hex.EncodeToString(ciphertext[1:headerLen])
}

// GenerateKeyFile writes a new key file with one random key, mode 0600,
// creating its directory (0700) if needed; it never overwrites a file.
func GenerateKeyFile(path string) error {
	raw := make([]byte, keyLen)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("generating an encryption key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating the directory of key file %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating key file %s: %w", path, err)
	}
	content := "# nxtcron encryption keys: one base64 32-byte key per line; the first encrypts.\n" +
		"# Back this file up: without it the stored tokens cannot be read.\n" +
		base64.StdEncoding.EncodeToString(raw) + "\n"
	if _, err := f.WriteString(content); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	return nil
}

// KeyOptions say how OpenKeys finds the keys.
type KeyOptions struct {
	// Store is the store section of config.yaml: encryption_keys or
	// encryption_keys_file.
	Store config.Store
	// Generate allows writing a new key file when the file is missing and
	// the store holds no key check yet (the embedded SQLite store). With a
	// shared (Postgres) store a missing key is an error: replicas must
	// share their keys.
	Generate bool
	Logger   *zap.Logger
}

// OpenKeys loads the encryption keys and checks them against the store's
// key check: a store that holds a key check refuses keys that do not open
// it, and a store without one gets one sealed with the first key. This is
// the startup check of every process that reads or writes tokens.
func OpenKeys(ctx context.Context, ts store.TokenStore, o KeyOptions) (*Keyring, error) {
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	stored, err := ts.KeyCheck(ctx)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	k, err := loadKeys(o, stored, log)
	if err != nil {
		return nil, err
	}
	if stored == nil {
		check, err := k.Seal(purposeKeyCheck, []byte(keyCheckValue))
		if err != nil {
			return nil, err
		}
		if stored, err = ts.EnsureKeyCheck(ctx, check); err != nil {
			return nil, err
		}
	}
	plain, err := k.Open(purposeKeyCheck, stored)
	if err != nil || string(plain) != keyCheckValue {
		return nil, fmt.Errorf("the configured encryption keys (ids %s) do not match the store's: its tokens are encrypted with key %s; "+
			"configure that key (first to keep encrypting with it, or after the new one until `nxtcron tokens rekey` ran)",
			strings.Join(k.IDs(), ", "), CipherKeyID(stored))
	}
	return k, nil
}

func loadKeys(o KeyOptions, stored []byte, log *zap.Logger) (*Keyring, error) {
	if len(o.Store.EncryptionKeys) > 0 {
		lines := make([]string, len(o.Store.EncryptionKeys))
		for i, s := range o.Store.EncryptionKeys {
			lines[i] = s.Reveal()
		}
		k, err := ParseKeys(strings.Join(lines, "\n"))
		if err != nil {
			return nil, fmt.Errorf("store.encryption_keys: %w", err)
		}
		return k, nil
	}
	path := o.Store.EncryptionKeysFile
	if path == "" {
		return nil, fmt.Errorf("store.encryption_keys_file and store.encryption_keys are both empty: %w", ErrNoKeys)
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		switch {
		case stored != nil:
			return nil, fmt.Errorf("store.encryption_keys_file %s is missing, but the store holds tokens encrypted with key %s: restore the file from your backup", path, CipherKeyID(stored))
		case !o.Generate:
			return nil, fmt.Errorf("store.encryption_keys_file %s is missing: with a shared store every replica needs the same keys; "+
				"create one with: (umask 077; openssl rand -base64 32 > %s), or set store.encryption_keys: %w", path, path, ErrNoKeys)
		}
		if err := GenerateKeyFile(path); err != nil {
			return nil, err
		}
		log.Info("generated a new encryption key file; back it up with the store", zap.String("path", path))
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("reading store.encryption_keys_file: %w", err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("the encryption key file can be read by other users; chmod 600 it", zap.String("path", path), zap.String("mode", fi.Mode().Perm().String()))
	}
	k, err := ParseKeys(string(data))
	if err != nil {
		return nil, fmt.Errorf("store.encryption_keys_file %s: %w", path, err)
	}
	return k, nil
}

// Rekey seals every stored token (and the key check) again with the first
// key, in one transaction; afterwards the other keys can be removed. It
// returns the number of ciphertexts re-encrypted.
func Rekey(ctx context.Context, ts store.TokenStore, k *Keyring) (int, error) {
	return ts.Rekey(ctx, k.reseal)
}

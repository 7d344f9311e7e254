// Package datakey holds the fabric's data keys: AES-256 keys that seal what
// must not be readable from a node's disk (Secrets in the object store).
//
// The keys are generated in the CA directory (File) and reach a node only
// through the join protocol, after the node has proven it is a node of the
// trust domain (a join token or a valid node SVID), over the libp2p secure
// channel; a node keeps its copy in its data dir, mode 0600. Rotation adds a
// key that becomes active later (ActiveFrom), by when every node has
// fetched it with its next SVID renewal; values sealed with older keys stay
// readable, since keys are never dropped from a ring.
//
// Who may import it: securityplane (join, identity), and the root package,
// which hands a node's Ring to the object layer as its sealer.
package datakey

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// File is the name of a ring in the CA directory and in a node's data dir.
const File = "datakeys.json"

// DefaultActivation is how long a rotated key waits before it seals: longer
// than a node SVID lives (24 h), so every node that is still a member has
// renewed, and fetched it, by then.
const DefaultActivation = 25 * time.Hour

// prefix starts every sealed value, followed by the key ID and ':'.
const prefix = "mycel:aesgcm:v1:"

var (
	// ErrUnknownKey means a value was sealed with a key this ring does not
	// hold (a key rotated in since this node last renewed its SVID).
	ErrUnknownKey = errors.New("datakey: sealed with a data key this node does not hold yet; it arrives with the node's next SVID renewal (restart the node to renew now)")
	// ErrNotSealed means a value is not in the sealed format.
	ErrNotSealed = errors.New("datakey: value is not sealed")
	// ErrEmpty means the ring holds no key.
	ErrEmpty = errors.New("datakey: no data key: the node has not received the fabric's data keys")
)

// Key is one data key.
type Key struct {
	// ID names the key in every value it sealed.
	ID string `json:"id"`
	// Secret is the 256-bit AES key.
	Secret []byte `json:"secret"`
	// Created is when the key was generated.
	Created time.Time `json:"created"`
	// ActiveFrom is when the key starts sealing new values.
	ActiveFrom time.Time `json:"activeFrom"`
}

// New generates a key that seals from activeFrom on.
func New(now, activeFrom time.Time) (Key, error) {
	id := make([]byte, 4)
	secret := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return Key{}, err
	}
	if _, err := rand.Read(secret); err != nil {
		return Key{}, err
	}
	return Key{ID: hex.EncodeToString(id), Secret: secret, Created: now.UTC(), ActiveFrom: activeFrom.UTC()}, nil
}

// Ring is a set of data keys. It seals with the newest active key and opens
// with any. It is safe for concurrent use.
type Ring struct {
	now func() time.Time
	mu  sync.RWMutex
	// keys are sorted by ActiveFrom, then ID.
	keys []Key
}

// NewRing returns a ring of keys; now may be nil (time.Now).
func NewRing(now func() time.Time, keys ...Key) *Ring {
	if now == nil {
		now = time.Now
	}
	r := &Ring{now: now}
	r.Add(keys...)
	return r
}

// Keys returns a copy of the ring's keys.
func (r *Ring) Keys() []Key {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return slices.Clone(r.keys)
}

// Add adds the keys the ring does not hold yet and reports whether it did.
func (r *Ring) Add(keys ...Key) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	added := false
	for _, k := range keys {
		if len(k.Secret) != 32 || k.ID == "" || slices.ContainsFunc(r.keys, func(h Key) bool { return h.ID == k.ID }) {
			continue
		}
		r.keys = append(r.keys, k)
		added = true
	}
	slices.SortFunc(r.keys, func(a, b Key) int {
		if c := a.ActiveFrom.Compare(b.ActiveFrom); c != 0 {
			return c
		}
		return bytes.Compare([]byte(a.ID), []byte(b.ID))
	})
	return added
}

// primary is the key that seals now: the newest active one, or the oldest
// if none is active yet.
func (r *Ring) primary() (Key, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.keys) == 0 {
		return Key{}, ErrEmpty
	}
	now := r.now()
	for i := len(r.keys) - 1; i >= 0; i-- {
		if !r.keys[i].ActiveFrom.After(now) {
			return r.keys[i], nil
		}
	}
	return r.keys[0], nil
}

func (r *Ring) key(id string) (Key, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	i := slices.IndexFunc(r.keys, func(k Key) bool { return k.ID == id })
	if i < 0 {
		return Key{}, false
	}
	return r.keys[i], true
}

// Seal encrypts plaintext with AES-256-GCM under the primary key. ad is
// authenticated with it (the store key), so a sealed value copied under
// another key does not open.
func (r *Ring) Seal(plaintext, ad []byte) ([]byte, error) {
	k, err := r.primary()
	if err != nil {
		return nil, err
	}
	aead, err := gcm(k)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(prefix)+len(k.ID)+1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out = append(append(append(out, prefix...), k.ID...), ':')
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, ad), nil
}

// Open decrypts what Seal sealed with the same ad.
func (r *Ring) Open(sealed, ad []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(sealed, []byte(prefix))
	if !ok {
		return nil, ErrNotSealed
	}
	id, rest, ok := bytes.Cut(rest, []byte(":"))
	if !ok {
		return nil, ErrNotSealed
	}
	k, ok := r.key(string(id))
	if !ok {
		return nil, fmt.Errorf("%w (key %s)", ErrUnknownKey, id)
	}
	aead, err := gcm(k)
	if err != nil {
		return nil, err
	}
	if len(rest) < aead.NonceSize() {
		return nil, ErrNotSealed
	}
	out, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], ad)
	if err != nil {
		return nil, fmt.Errorf("datakey: open with key %s: %w", id, err)
	}
	return out, nil
}

func gcm(k Key) (cipher.AEAD, error) {
	block, err := aes.NewCipher(k.Secret)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// ring is the file format.
type ring struct {
	Keys []Key `json:"keys"`
}

// Load reads a ring file; the error wraps fs.ErrNotExist if there is none.
func Load(path string, now func() time.Time) (*Ring, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("datakey: %w", err)
	}
	var f ring
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, fmt.Errorf("datakey: %s is corrupt: %w", path, err)
	}
	return NewRing(now, f.Keys...), nil
}

// Marshal encodes the ring as its file holds it.
func (r *Ring) Marshal() ([]byte, error) {
	return json.MarshalIndent(ring{Keys: r.Keys()}, "", "  ")
}

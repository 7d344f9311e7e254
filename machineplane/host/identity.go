package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// KeyFile is the name of the identity key inside a node's data dir.
const KeyFile = "node.key"

// Identity is a node's libp2p key and peer ID.
type Identity struct {
	Key crypto.PrivKey
	ID  peer.ID
}

// LoadOrCreateIdentity reads the node key from dataDir, creating an ed25519
// key on first start. The key never changes afterwards, so the peer ID is
// stable across restarts.
func LoadOrCreateIdentity(dataDir string) (*Identity, error) {
	path := filepath.Join(dataDir, KeyFile)
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		key, err := crypto.UnmarshalPrivateKey(raw)
		if err != nil {
			return nil, fmt.Errorf("host: %s is not a libp2p private key: %w (move it away to create a new identity)", path, err)
		}
		return identityOf(key)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("host: read identity: %w", err)
	}
	key, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("host: generate identity: %w", err)
	}
	raw, err = crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("host: marshal identity: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("host: %w", err)
	}
	// O_EXCL: two processes racing on a fresh data dir never both win.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("host: create identity: %w", err)
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("host: write identity: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("host: write identity: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("host: write identity: %w", err)
	}
	return identityOf(key)
}

func identityOf(key crypto.PrivKey) (*Identity, error) {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("host: peer ID: %w", err)
	}
	return &Identity{Key: key, ID: id}, nil
}

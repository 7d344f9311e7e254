package host

import (
	"os"
	"path/filepath"
	"testing"
)

func TestIdentityIsStableAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != b.ID || a.ID == "" {
		t.Fatalf("peer ID changed across restarts: %s vs %s", a.ID, b.ID)
	}
	if got := a.Key.Type().String(); got != "Ed25519" {
		t.Fatalf("key type %s, want Ed25519", got)
	}
	other, _ := LoadOrCreateIdentity(t.TempDir())
	if other.ID == a.ID {
		t.Fatal("two data dirs share a peer ID")
	}
}

func TestCorruptIdentityIsAnError(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, KeyFile), []byte("garbage"), 0o600)
	if _, err := LoadOrCreateIdentity(dir); err == nil {
		t.Fatal("corrupt key accepted")
	}
}

package ca

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Join tokens let a machine join the trust domain: like kubeadm's bootstrap
// tokens with CA-hash pinning, a token names the issuers to dial, carries a
// secret the issuer checks, and pins the CA by fingerprint. Tokens are kept
// (as secret hashes) in DIR/tokens; issuers (running nodes that hold the CA)
// register their libp2p addresses in DIR/issuers.

const (
	tokensDir   = "tokens"
	issuersDir  = "issuers"
	tokenPrefix = "mycel1."
)

var (
	// ErrTokenInvalid means a token is malformed, unknown or has a wrong secret.
	ErrTokenInvalid = errors.New("ca: join token is not valid")
	// ErrTokenExpired means the token's lifetime has passed.
	ErrTokenExpired = errors.New("ca: join token expired (create a new one with `mycel token create`)")
	// ErrTokenUsed means the token has no uses left.
	ErrTokenUsed = errors.New("ca: join token already used up (create a new one with `mycel token create`)")
	// ErrNoIssuers means no running node holds this CA.
	ErrNoIssuers = errors.New("ca: no node holding this CA is running (start one with `mycel node --ca-dir`)")
)

// Token is the decoded form of a join token.
type Token struct {
	Version int      `json:"v"`
	Issuers []string `json:"issuers"` // libp2p multiaddrs ending in /p2p/<peerID>
	ID      string   `json:"id"`
	Secret  string   `json:"secret"`
	CA      string   `json:"ca"` // CA fingerprint, sha256:HEX
}

// String encodes the token as users pass it to `mycel node --join`.
func (t Token) String() string {
	b, _ := json.Marshal(t)
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseToken decodes a token string.
func ParseToken(s string) (Token, error) {
	var t Token
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), tokenPrefix)
	if !ok {
		return t, fmt.Errorf("%w: it does not start with %q (copy it whole from `mycel token create`)", ErrTokenInvalid, tokenPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return t, fmt.Errorf("%w: %v", ErrTokenInvalid, err)
	}
	if err := json.Unmarshal(raw, &t); err != nil || t.Version != 1 || t.ID == "" || t.Secret == "" || !strings.HasPrefix(t.CA, "sha256:") || len(t.Issuers) == 0 {
		return Token{}, fmt.Errorf("%w: malformed", ErrTokenInvalid)
	}
	return t, nil
}

// tokenRecord is what the CA directory keeps of a token.
type tokenRecord struct {
	SecretHash string    `json:"secretHash"`
	Expires    time.Time `json:"expires"`
	UsesLeft   int       `json:"usesLeft"`
}

// RegisterIssuer records that the node peerID, holding this CA, accepts
// joins at addrs. Nodes call it at start.
func RegisterIssuer(dir, peerID string, addrs []string) error {
	if err := os.MkdirAll(filepath.Join(dir, issuersDir), 0o700); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	return WriteFile(filepath.Join(dir, issuersDir, peerID), []byte(strings.Join(addrs, "\n")+"\n"), 0o644)
}

// UnregisterIssuer removes a node's registration.
func UnregisterIssuer(dir, peerID string) {
	os.Remove(filepath.Join(dir, issuersDir, peerID))
}

// CreateToken makes a token valid for ttl and uses redemptions.
func (a *Authority) CreateToken(dir string, ttl time.Duration, uses int) (Token, error) {
	if ttl <= 0 || uses <= 0 {
		return Token{}, errors.New("ca: a token needs a positive --ttl and --uses")
	}
	entries, err := os.ReadDir(filepath.Join(dir, issuersDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Token{}, fmt.Errorf("ca: %w", err)
	}
	var issuers []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, issuersDir, e.Name()))
		if err != nil {
			continue
		}
		issuers = append(issuers, strings.Fields(string(data))...)
	}
	if len(issuers) == 0 {
		return Token{}, ErrNoIssuers
	}
	sort.Strings(issuers)
	id, secret := randomHex(6), randomHex(16)
	sum := sha256.Sum256([]byte(secret))
	rec := tokenRecord{SecretHash: hex.EncodeToString(sum[:]), Expires: a.now().Add(ttl), UsesLeft: uses}
	data, _ := json.Marshal(rec)
	if err := os.MkdirAll(filepath.Join(dir, tokensDir), 0o700); err != nil {
		return Token{}, fmt.Errorf("ca: %w", err)
	}
	if err := WriteFile(filepath.Join(dir, tokensDir, id+".json"), data, 0o600); err != nil {
		return Token{}, err
	}
	return Token{Version: 1, Issuers: issuers, ID: id, Secret: secret, CA: a.Fingerprint()}, nil
}

// RedeemToken checks a token's secret, expiry and uses, and uses it once.
// Concurrent redemptions (several issuers sharing the directory) are
// serialized by a file lock.
func (a *Authority) RedeemToken(dir, id, secret string) error {
	if !validTokenID(id) {
		return ErrTokenInvalid
	}
	if err := os.MkdirAll(filepath.Join(dir, tokensDir), 0o700); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, tokensDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("ca: lock tokens: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	path := filepath.Join(dir, tokensDir, id+".json")
	data, err := os.ReadFile(path)
	if err != nil {
		return ErrTokenInvalid
	}
	var rec tokenRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return ErrTokenInvalid
	}
	sum := sha256.Sum256([]byte(secret))
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(rec.SecretHash)) != 1 {
		return ErrTokenInvalid
	}
	if !a.now().Before(rec.Expires) {
		return ErrTokenExpired
	}
	if rec.UsesLeft <= 0 {
		return ErrTokenUsed
	}
	rec.UsesLeft--
	data, _ = json.Marshal(rec)
	return WriteFile(path, data, 0o600)
}

func validTokenID(id string) bool {
	if len(id) != 12 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

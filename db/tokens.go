package db

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/pairgate/pairgate/config"
)

// keySize is the length of pairing.key: an AES-256 key.
const keySize = 32

// NewToken returns a fresh pairing token: 32 random bytes, base64url without
// padding (43 characters), the format OpenClaw uses from 2026.2.17.
func NewToken() string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(32))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	// crypto/rand.Read never fails on supported platforms (Go ≥ 1.24 crashes
	// the program instead of returning weak bytes).
	rand.Read(b)
	return b
}

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// tokenMatches compares a presented token with a stored digest in constant time.
func tokenMatches(token string, digest []byte) bool {
	return subtle.ConstantTimeCompare(hashToken(token), digest) == 1
}

// sealer seals tokens with AES-256-GCM under the profile's pairing.key. The
// node id is the additional data, so a sealed token cannot be moved to
// another node's row.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(nodeID, token string) []byte {
	nonce := randomBytes(s.aead.NonceSize())
	return s.aead.Seal(nonce, nonce, []byte(token), []byte(nodeID))
}

func (s *sealer) open(nodeID string, sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", errors.New("sealed token too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(nodeID))
	if err != nil {
		return "", err
	}
	return string(plain), nil
}

// loadOrCreateKey reads pairing.key, creating it (0600) when missing.
// created reports that a new key was written.
func loadOrCreateKey(path string) (key []byte, created bool, err error) {
	key, err = os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		created, err = config.CreateFileOnce(path, randomBytes(keySize))
		if err != nil {
			return nil, false, err
		}
		key, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, false, err
	}
	if len(key) != keySize {
		return nil, false, fmt.Errorf("%s: want %d bytes, found %d; restore the original key file, or move it away to start a new one (tokens sealed under the old key then cannot be exported)", path, keySize, len(key))
	}
	return key, created, nil
}

// NewUUID returns a random (version 4) UUID in lowercase, OpenClaw's
// request id format.
func NewUUID() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

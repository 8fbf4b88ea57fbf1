package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/internal/diskhint"
	"github.com/pairgate/pairgate/server/rpc"
	"github.com/pairgate/pairgate/server/ws"
)

// Profile is one served gateway profile: its configuration, its store and
// its operator token, with the state directory locked for this process.
type Profile struct {
	Config config.Profile
	Store  *db.Store

	// operatorDigest is the SHA-256 of the operator token: a presented
	// token is hashed too and the digests compared, so the compare takes
	// the same time whatever the lengths.
	operatorDigest [sha256.Size]byte
	// shortToken says the operator token is shorter than minOperatorToken.
	shortToken bool
	lock       *db.StateLock
	// rpc is the profile as the dispatcher sees it, hub its live
	// WebSocket state; New sets both.
	rpc *rpc.Profile
	hub *ws.Hub
}

// minOperatorToken is the shortest operator token accepted without a
// warning (generated ones have 43 characters).
const minOperatorToken = 32

// OpenProfile prepares a profile for serving: creates its state directory,
// takes the state-directory lock, resolves the operator token, and opens
// and migrates the store. now is the store's clock (nil: time.Now).
func OpenProfile(ctx context.Context, pc config.Profile, log *slog.Logger, now func() time.Time) (*Profile, error) {
	_, dirErr := os.Stat(pc.StateDir)
	if err := pc.EnsureNodesDir(); err != nil {
		return nil, diskhint.Wrap(err, pc.StateDir) // it names the profile
	}
	if errors.Is(dirErr, fs.ErrNotExist) {
		// An outside trial: a typo in stateDir served an empty profile,
		// every node's token failing, and the log said nothing of it.
		log.Warn("created the profile's state directory, which did not exist: the profile starts empty; if its state is elsewhere (a typo in stateDir, a mount not there yet), stop pairgate and fix stateDir",
			"profile", pc.Name, "stateDir", pc.StateDir)
	}
	lock, err := db.LockStateDir(pc.LockPath())
	if err != nil {
		if !errors.Is(err, db.ErrLocked) {
			err = diskhint.Wrap(err, pc.NodesDir()) // a directory of another user
		}
		return nil, fmt.Errorf("profile %q: %w", pc.Name, err)
	}
	p := &Profile{Config: pc, lock: lock}
	_, statErr := os.Stat(pc.DatabasePath())
	created := errors.Is(statErr, fs.ErrNotExist)
	opts := db.OptionsFor(pc)
	_, keyErr := os.Stat(opts.KeyPath)
	keyMade := created && errors.Is(keyErr, fs.ErrNotExist)
	opts.Migrate = true // we hold the lock
	opts.Serving = true
	opts.Now = now
	opts.Logger = log.With("profile", pc.Name)
	// The store first: a store Open refuses (a missing key, a newer
	// schema) leaves no operator token file generated behind.
	if p.Store, err = db.Open(ctx, opts); err != nil {
		p.Close()
		return nil, fmt.Errorf("profile %q: %w", pc.Name, diskhint.Wrap(err, pc.NodesDir()))
	}
	if err := p.Store.QuickCheck(ctx); err != nil {
		p.Close()
		return nil, fmt.Errorf("profile %q: %w", pc.Name, err)
	}
	if created {
		if err := autoImport(ctx, p, log); err != nil {
			// Serving the profile without its OpenClaw pairings would
			// refuse every node paired there, and the next start would
			// not try again (the database would exist). The database just
			// made goes, so the next start does: the files stay as they
			// are.
			p.Store.Close()
			p.Store = nil
			// The key made with it goes too: a key without a database
			// is refused at start as a lost database.
			db.RemoveDatabase(pc.DatabasePath())
			if keyMade {
				os.Remove(opts.KeyPath)
			}
			p.Close()
			return nil, fmt.Errorf("profile %q: %w", pc.Name, err)
		}
	}
	token, err := operatorToken(pc, log)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("profile %q: operator token: %w", pc.Name, err)
	}
	p.operatorDigest, p.shortToken = sha256.Sum256([]byte(token)), len(token) < minOperatorToken
	return p, nil
}

// operatorToken returns the configured token, the token file's, or the
// generated one (creating it on first use). The token itself is never logged.
func operatorToken(pc config.Profile, log *slog.Logger) (string, error) {
	switch {
	case pc.Token != "":
		return pc.Token, nil
	case pc.TokenFile != "":
		return config.ReadTokenFile(pc.TokenFile)
	}
	path := pc.OperatorTokenPath()
	token, err := config.ReadTokenFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return token, err
	}
	created, err := config.CreateFileOnce(path, []byte(db.NewToken()+"\n"))
	if err != nil {
		return "", err
	}
	if created {
		log.Info("generated an operator token", "profile", pc.Name, "file", path)
	}
	return config.ReadTokenFile(path)
}

// Authorized compares a presented operator token in constant time.
func (p *Profile) Authorized(token string) bool {
	digest := sha256.Sum256([]byte(token))
	return token != "" && subtle.ConstantTimeCompare(digest[:], p.operatorDigest[:]) == 1
}

// warnWeakTokens logs, at start, operator tokens that are short or shared
// by two profiles (either then opens both). The token is never logged.
func warnWeakTokens(profiles []*Profile, log *slog.Logger) {
	owner := map[[sha256.Size]byte]string{}
	for _, p := range profiles {
		if p.shortToken {
			log.Warn(fmt.Sprintf("the operator token is shorter than %d characters: easy to guess; set a longer one", minOperatorToken), "profile", p.Config.Name)
		}
		if other, shared := owner[p.operatorDigest]; shared {
			log.Warn("two profiles have the same operator token: either opens both; give each its own", "profile", p.Config.Name, "sameAs", other)
			continue
		}
		owner[p.operatorDigest] = p.Config.Name
	}
}

// Close closes the store and releases the state-directory lock.
func (p *Profile) Close() error {
	var errs []error
	if p.Store != nil {
		errs = append(errs, p.Store.Close())
	}
	errs = append(errs, p.lock.Release())
	return errors.Join(errs...)
}

package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
)

// Profile is one served gateway profile: its configuration, its store and
// its operator token, with the state directory locked for this process.
type Profile struct {
	Config config.Profile
	Store  *db.Store

	operatorToken string
	lock          *db.StateLock
}

// OpenProfile prepares a profile for serving: creates its state directory,
// takes the state-directory lock, resolves the operator token, and opens
// and migrates the store. now is the store's clock (nil: time.Now).
func OpenProfile(ctx context.Context, pc config.Profile, log *slog.Logger, now func() time.Time) (*Profile, error) {
	if err := pc.EnsureNodesDir(); err != nil {
		return nil, err
	}
	lock, err := db.LockStateDir(pc.LockPath())
	if err != nil {
		return nil, fmt.Errorf("profile %q: %w", pc.Name, err)
	}
	p := &Profile{Config: pc, lock: lock}
	if p.operatorToken, err = operatorToken(pc, log); err != nil {
		p.Close()
		return nil, fmt.Errorf("profile %q: operator token: %w", pc.Name, err)
	}
	_, statErr := os.Stat(pc.DatabasePath())
	created := errors.Is(statErr, fs.ErrNotExist)
	opts := db.OptionsFor(pc)
	opts.Migrate = true // we hold the lock
	opts.Now = now
	opts.Logger = log.With("profile", pc.Name)
	if p.Store, err = db.Open(ctx, opts); err != nil {
		p.Close()
		return nil, fmt.Errorf("profile %q: %w", pc.Name, err)
	}
	if created {
		autoImport(ctx, p, log)
	}
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
	return token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(p.operatorToken)) == 1
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

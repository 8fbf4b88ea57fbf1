package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/pairgate/pairgate/db"
)

// runNewKey makes a new pairing.key for a profile whose key is lost. It is
// the only way to one while the database holds sealed tokens: those
// nodes still verify, but their tokens can never be exported again.
func runNewKey(ctx context.Context, env Env, args []string) error {
	flags := newFlags(env, "new-key", "[--state-dir DIR | --profile NAME]")
	pf := addProfileFlags(flags)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	p, err := pf.resolve(env)
	if err != nil {
		return err
	}
	if _, err := os.Stat(p.DatabasePath()); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no database at %s: a new store makes its key itself", p.DatabasePath())
	}
	if err := openLocked(ctx, p, "stop the server first: it holds the key it started with", func(o *db.Options) { o.NewKey = true }); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "Wrote a new %s. Paired nodes still verify; tokens sealed under the lost key can no longer be exported (export them with --redact-tokens --to DIR, or pair those nodes again).\n", p.KeyPath())
	if env.Getenv("PAIRGATE_CONFIG") == "" {
		fmt.Fprintf(env.Stdout, "No $PAIRGATE_CONFIG was set: if the server's configuration names a keyFile for this profile, that key is now refused for this database; the server needs this new key at its keyFile.\n")
	}
	return nil
}

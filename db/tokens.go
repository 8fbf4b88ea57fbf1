package db

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

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

// readKey reads pairing.key: nil when there is none.
func readKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	if len(key) != keySize {
		return nil, fmt.Errorf("%w: %s: want %d bytes, found %d; restore the original key file (or, if it is lost, move this one away and run `pairgate new-key`: tokens sealed under the old key then cannot be exported)", ErrIntegrity, path, keySize, len(key))
	}
	return key, nil
}

// lookAt opens the database at path read-only. Such a look at a WAL
// database makes an empty -wal and a -shm where there were none: done
// closes it and, with forget, removes the ones it made, so the look
// changes no file.
func lookAt(path string) (conn *sql.DB, done func(forget bool), err error) {
	made := map[string]bool{}
	for _, suffix := range []string{"-wal", "-shm"} {
		if _, err := os.Stat(path + suffix); errors.Is(err, fs.ErrNotExist) {
			made[suffix] = true
		}
	}
	conn, err = sql.Open("sqlite", DSN(path, true)+"&mode=ro")
	if err != nil {
		return nil, nil, err
	}
	return conn, func(forget bool) {
		conn.Close()
		if wal, err := os.Stat(path + "-wal"); forget && made["-wal"] && err == nil && wal.Size() == 0 {
			os.Remove(path + "-wal")
			if made["-shm"] {
				os.Remove(path + "-shm")
			}
		}
	}, nil
}

// CheckBesideKey refuses, as Open does, a missing or empty database
// where the profile's key exists (a lost database): for commands that
// only look (migrate --status).
func CheckBesideKey(opts Options) error {
	_, err := os.Stat(opts.KeyPath)
	return checkDatabaseBesideKey(opts, err == nil)
}

// checkDatabaseBesideKey refuses a missing or empty database where a key
// exists: the key is written after the database is set up, so the
// database was lost, and starting empty would lose every pairing silently.
func checkDatabaseBesideKey(opts Options, keyExists bool) error {
	if !keyExists {
		return nil
	}
	info, err := os.Stat(opts.Path)
	problem := ""
	switch {
	case errors.Is(err, fs.ErrNotExist):
		problem = "is missing"
	case err != nil:
		return err
	case info.Size() == 0:
		problem = "is empty (0 bytes)"
	default:
		return nil
	}
	return fmt.Errorf("%w: %s exists but the database %s %s; restore the database (with its -wal file) from a backup, or, to start an empty store on purpose, move %s away", ErrIntegrity, opts.KeyPath, opts.Path, problem, filepath.Base(opts.KeyPath))
}

// checkContents refuses a database file pairgate did not make (tables,
// but not goose's version table), and one without any table where the
// key exists: until a checkpoint, a database's every page is in its -wal
// file, and a lost -wal leaves an empty database that migrations would
// set up again as a new, empty store.
//
// It runs before the writer connection, which would switch a foreign
// file to WAL mode, on a connection of its own. It returns the tables it
// found (none for a new database), for checkKey.
func checkContents(ctx context.Context, opts Options, keyExists bool) (tables []string, refused error) {
	if info, err := os.Stat(opts.Path); err != nil || info.Size() == 0 {
		return nil, nil // a new database (checkDatabaseBesideKey looked at the key)
	}
	// Read-only: closing it then never checkpoints the WAL away (the
	// last connection to close does, and the WAL a crash left is what
	// checkBoot looks for). A refusal leaves no file it made; an open
	// that goes on uses them.
	conn, done, err := lookAt(opts.Path)
	if err != nil {
		return nil, err
	}
	defer func() { done(refused != nil) }()
	rows, err := conn.QueryContext(ctx, `SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`)
	if err != nil {
		return nil, damaged(opts.Path, fmt.Errorf("read the tables of %s: %w", opts.Path, err))
	}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			rows.Close()
			return nil, damaged(opts.Path, fmt.Errorf("read the tables of %s: %w", opts.Path, err))
		}
		tables = append(tables, name)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, damaged(opts.Path, fmt.Errorf("read the tables of %s: %w", opts.Path, err))
	}
	switch {
	case len(tables) > 0 && !slices.Contains(tables, gooseTable):
		shown := tables[:min(len(tables), 5)]
		return nil, fmt.Errorf("%w: %s is an SQLite database pairgate did not make (its tables: %s; none is pairgate's %s): give the profile a state directory of its own, or move the file away", ErrIntegrity, opts.Path, strings.Join(shown, ", "), gooseTable)
	case len(tables) == 0 && keyExists:
		return nil, fmt.Errorf("%w: %s exists but the database %s holds no table: its contents were in its -wal file, which is gone (or the file was replaced); restore the database with its -wal file from a backup, or, to start an empty store on purpose, move %s away", ErrIntegrity, opts.KeyPath, opts.Path, filepath.Base(opts.KeyPath))
	}
	return tables, nil
}

// gooseTable is where goose records the schema version.
const gooseTable = "goose_db_version"

// keyCheckID is the additional data of the key check: no node has it
// (node ids cannot hold NUL).
const keyCheckID = "\x00pairgate key check"

// keyPlan is what checkKey found, for openKey to act on once the schema
// is current.
type keyPlan struct {
	paired int
	// create says pairing.key is missing and may be made.
	create bool
	// checked says the database has a key check the key opens.
	checked bool
}

// checkKey makes sure pairing.key (key, nil when missing) is the key the
// stored tokens are sealed under, before anything is written (a migration
// included: a refused start leaves the database as an older pairgate can
// still serve it). It only reads, and reads any schema version. A missing
// key may be created only for a database set up under none (no key check,
// no token), or with opts.NewKey; a key that does not open the key check
// or the stored tokens is refused. tables are the database's
// (checkContents).
func (s *Store) checkKey(ctx context.Context, opts Options, key []byte, tables []string) (keyPlan, error) {
	var plan keyPlan
	var err error
	checkTable := slices.Contains(tables, "key_check")
	var hasCheck bool
	if slices.Contains(tables, "nodes") {
		err = s.read.QueryRowContext(ctx, `SELECT count(*) FROM nodes`).Scan(&plan.paired)
	}
	if err == nil && checkTable {
		err = s.read.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM key_check)`).Scan(&hasCheck)
	}
	if err != nil {
		return plan, fmt.Errorf("token key: %w", err)
	}
	paired := plan.paired
	// restore says what to do; first is the step before new-key (a wrong
	// key must be moved away: new-key makes one only where none is).
	restore := func(first string) string {
		return fmt.Sprintf("restore the original %s from a backup (the key is in no replica of the database: copy it from the old host, or from where the operator keeps it); or, if it is lost for good, %srun `pairgate new-key` for this state directory (with the server stopped): the %d paired node(s) still verify, but their tokens can then never be exported", filepath.Base(opts.KeyPath), first, paired)
	}
	switch {
	case key != nil && opts.NewKey:
		return plan, fmt.Errorf("%w: %s exists; a new key is made only where none is: move it away first", ErrIntegrity, opts.KeyPath)
	case key == nil && (paired > 0 || hasCheck) && !opts.NewKey:
		// Often the key is not lost but elsewhere: a keyFile of the
		// server's configuration, and a command run without it. A new
		// key here would be the database's from now on, and that
		// keyFile refused at the next start: that case comes first.
		held := "was set up under another key (its key check is sealed under it)"
		if paired > 0 {
			held = fmt.Sprintf("holds the tokens of %d paired node(s) sealed under it", paired)
		}
		// A keyFile configured and the key still in the state directory
		// (the README's "move nodes/pairing.key there" not done yet).
		if beside := filepath.Join(filepath.Dir(opts.Path), "pairing.key"); beside != opts.KeyPath {
			if _, err := os.Stat(beside); err == nil {
				return plan, fmt.Errorf("%w: %s is missing, and the database %s; %s is there: move it to %s", ErrIntegrity, opts.KeyPath, held, beside, opts.KeyPath)
			}
		}
		// serve has its configuration, keyFile and all; a command of the
		// CLI may have been run without it.
		elsewhere := "if the server's configuration names a keyFile for this profile, run this command with $PAIRGATE_CONFIG set to that configuration (the key is there, and `new-key` would make it useless for this database); otherwise "
		if opts.Serving {
			elsewhere = ""
		}
		return plan, fmt.Errorf("%w: %s is missing, and the database %s; %s%s", ErrIntegrity, opts.KeyPath, held, elsewhere, restore(""))
	case key == nil:
		plan.create = true
		return plan, nil
	}
	if s.seal, err = newSealer(key); err != nil {
		return plan, fmt.Errorf("token key: %w", err)
	}
	opens, checked := s.keyOpens(ctx, checkTable)
	if (paired > 0 || checked) && !opens {
		return plan, fmt.Errorf("%w: %s does not open the tokens sealed in %s: it is not this database's key; %s", ErrIntegrity, opts.KeyPath, opts.Path,
			restore("move this key away and "))
	}
	plan.checked = opens && checked
	return plan, nil
}

// openKey acts on checkKey's plan once the schema is current: it makes
// the missing key, and a key check where there is none.
func (s *Store) openKey(ctx context.Context, opts Options, plan keyPlan) error {
	if plan.create {
		var key []byte
		_, err := config.CreateFileOnce(opts.KeyPath, randomBytes(keySize))
		if err == nil {
			key, err = readKey(opts.KeyPath)
		}
		if err == nil {
			s.seal, err = newSealer(key)
		}
		if err != nil {
			return fmt.Errorf("token key: %w", err)
		}
		if plan.paired > 0 {
			s.log.Warn("a new pairing.key was created (new-key); paired nodes still verify, but the tokens sealed under the lost key can never be exported",
				"key", opts.KeyPath, "pairedNodes", plan.paired)
		}
	}
	if plan.checked {
		return nil
	}
	// A new key, or a database from before the check with no token
	// sealed under another key: the check follows this key from now on.
	return s.writeTx(ctx, "key check", func(tx *sql.Tx) error {
		_, err := s.w.exec(ctx, tx, `INSERT OR REPLACE INTO key_check (id, sealed) VALUES (1, ?)`, s.seal.seal(keyCheckID, keyCheckID))
		return err
	})
}

// keyOpens tries the key on the database's key check (checked says there
// is one; checkTable that its table exists) or, in a database from before
// the check, on its newest sealed token.
func (s *Store) keyOpens(ctx context.Context, checkTable bool) (opens, checked bool) {
	id := keyCheckID
	var sealed []byte
	err := sql.ErrNoRows
	if checkTable {
		err = s.read.QueryRowContext(ctx, `SELECT sealed FROM key_check`).Scan(&sealed)
	}
	checked = err == nil
	if errors.Is(err, sql.ErrNoRows) {
		err = s.read.QueryRowContext(ctx, `SELECT node_id, token_sealed FROM nodes ORDER BY approved_at_ms DESC, node_id LIMIT 1`).Scan(&id, &sealed)
	}
	if err != nil {
		return false, checked
	}
	_, err = s.seal.open(id, sealed)
	return err == nil, checked
}

// NewUUID returns a random (version 4) UUID in lowercase, OpenClaw's
// request id format.
func NewUUID() string {
	b := randomBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

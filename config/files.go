package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// EnsureNodesDir creates <stateDir>/nodes (and the state directory) 0700
// where missing. Existing directories keep their modes. A profile with no
// database yet under a mount point of /etc/fstab that has nothing mounted
// on it is refused: its disk did not mount, and what would be made is an
// empty profile on the mount point (served, every node refused, and
// hidden with what was approved there once the disk mounts over it).
// Every command that makes a database comes here first.
func (p Profile) EnsureNodesDir() error {
	if _, err := os.Stat(p.DatabasePath()); errors.Is(err, fs.ErrNotExist) {
		if mp := unmounted(p.StateDir); mp != "" {
			return fmt.Errorf("state directory of profile %q: %s holds no pairing database, and %s, which /etc/fstab mounts, has nothing mounted on it: mount it (and start pairgate after it, e.g. systemd's RequiresMountsFor=%s) rather than have an empty profile made on the mount point", p.Name, p.StateDir, mp, mp)
		}
	}
	if err := os.MkdirAll(p.NodesDir(), 0o700); err != nil {
		return fmt.Errorf("state directory of profile %q: %w", p.Name, err)
	}
	return nil
}

// CreateFileOnce writes data to path unless path already exists, and
// reports whether it wrote. The data goes whole into a 0600 temporary file
// that is then linked into place, so a concurrent reader sees no file or
// the complete one, and of two concurrent creators the first wins.
func CreateFileOnce(path string, data []byte) (bool, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, err
	}
	return true, SyncDir(filepath.Dir(path))
}

// SyncFile makes a file written by another hand (SQLite's VACUUM INTO,
// a Litestream restore) owner-only, like every file of a state
// directory, and durable.
func SyncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Chmod(0o600); err != nil {
		return err
	}
	return f.Sync()
}

// SyncDir makes a change of a directory's entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// OperatorTokenSource says where a profile's operator token comes from, for
// messages: the configuration, a token file, or the generated file.
func (p Profile) OperatorTokenSource() string {
	switch {
	case p.Token != "":
		return fmt.Sprintf("the token of profile %q in the configuration", p.Name)
	case p.TokenFile != "":
		return p.TokenFile
	default:
		return p.OperatorTokenPath()
	}
}

// ReadTokenFile reads a token file, trimming surrounding white space.
func ReadTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("%s is empty; put the operator token in it", path)
	}
	return token, nil
}

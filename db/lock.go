package db

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// StateLock is the exclusive hold a serving process keeps on a state
// directory (flock on nodes/pairing.lock). The kernel drops it when the
// process dies, so a crash never leaves a stale lock.
type StateLock struct{ f *os.File }

// ErrLocked means another process holds the state directory.
var ErrLocked = errors.New("state directory is locked")

// LockStateDir takes the lock at path without waiting. When another
// process holds it the error names the directory and that process.
func LockStateDir(path string) (*StateLock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := "another process"
			if b, rerr := os.ReadFile(path); rerr == nil {
				if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
					holder = "process " + strconv.Itoa(pid)
				}
			}
			return nil, fmt.Errorf("%w: %s is already served by %s (it holds %s); stop that server, or give this one another state directory",
				ErrLocked, filepath.Dir(filepath.Dir(path)), holder, path)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// Record who holds it, for the message above.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &StateLock{f: f}, nil
}

// Release gives the lock up.
func (l *StateLock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor releases the flock
	l.f = nil
	return err
}

package diskhint

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Hint says what about dir's filesystem explains a failure to open a
// profile: no space left, mounted read-only, or not writable by this
// process; "" when none of these holds. An operator trial saw only "disk
// I/O error (4874)" for a full disk, and "attempt to write a readonly
// database" without the directory.
func Hint(dir string) string {
	// A directory still to be made: what matters is the one to make it in.
	for {
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) || dir == filepath.Dir(dir) {
			break
		}
		dir = filepath.Dir(dir)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err == nil {
		if st.Flags&unix.ST_RDONLY != 0 {
			return fmt.Sprintf("the filesystem holding %s is mounted read-only", dir)
		}
		if free := st.Bavail * uint64(st.Bsize); free < 1<<20 {
			return fmt.Sprintf("the filesystem holding %s has %d KiB free: free some space", dir, free>>10)
		}
	}
	if err := unix.Access(dir, unix.W_OK); err != nil {
		return fmt.Sprintf("%s is not writable by this process (uid %d): %v%s", dir, os.Getuid(), err, owner(dir))
	}
	return ""
}

// owner names the user owning dir, or the nearest directory above it this
// process can look at: the user a command should run as.
func owner(dir string) string {
	for d := dir; ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if unix.Stat(d, &st) == nil {
			return fmt.Sprintf("; %s belongs to uid %d: run as that user", d, st.Uid)
		}
		if d == filepath.Dir(d) {
			return ""
		}
	}
}

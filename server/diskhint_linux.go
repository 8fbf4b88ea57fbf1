package server

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/pairgate/pairgate/config"
)

// diskHint says what about dir's filesystem explains a failure to open a
// profile: no space left, mounted read-only, or not writable by this
// process; "" when none of these holds. An operator trial saw only "disk
// I/O error (4874)" for a full disk, and "attempt to write a readonly
// database" without the directory.
func diskHint(dir string) string {
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
		return fmt.Sprintf("%s is not writable by this process (uid %d): %v", dir, os.Getuid(), err)
	}
	return ""
}

// unmounted is the deepest mount point of /etc/fstab at or above dir when
// nothing is mounted on it now, or "". A state directory on a disk that did
// not mount would otherwise be made afresh on the mount point beneath:
// an empty profile served, nodes refused, and what is approved meanwhile
// hidden once the disk mounts over it.
func unmounted(dir string) string {
	return unmountedIn(dir, "/etc/fstab", "/proc/self/mountinfo")
}

func unmountedIn(dir, fstabPath, mountinfoPath string) string {
	fstab, err := os.ReadFile(fstabPath)
	if err != nil {
		return ""
	}
	info, err := os.ReadFile(mountinfoPath)
	if err != nil {
		return ""
	}
	mounted := map[string]bool{}
	for line := range strings.Lines(string(info)) {
		// id parent major:minor root MOUNT-POINT options …
		if f := strings.Fields(line); len(f) > 4 {
			mounted[unescapeMount(f[4])] = true
		}
	}
	deepest := ""
	for line := range strings.Lines(string(fstab)) {
		// SPEC MOUNT-POINT TYPE OPTIONS …
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		mp := filepath.Clean(unescapeMount(f[1]))
		if filepath.IsAbs(mp) && config.Within(dir, mp) && len(mp) > len(deepest) {
			deepest = mp
		}
	}
	// The deepest mount point above dir holds it; "/" always has a
	// filesystem.
	if deepest == "" || deepest == "/" || mounted[deepest] {
		return ""
	}
	return deepest
}

// unescapeMount undoes the octal escapes (\040 for a space) of fstab and
// mountinfo paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

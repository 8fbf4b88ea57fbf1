package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// unmounted is the deepest mount point of /etc/fstab at or above dir when
// nothing is mounted on it now, or "". A state directory on a disk that did
// not mount would otherwise be made afresh on the mount point beneath:
// an empty profile served, nodes refused, and what is approved meanwhile
// hidden once the disk mounts over it.
func unmounted(dir string) string {
	// Through a symlinked path (/var/lib/gw -> /srv/disk/gw, ~/m -> /mnt)
	// the mount is the one the link leads to.
	for _, d := range []string{dir, resolveExisting(dir)} {
		if mp := unmountedIn(d, "/etc/fstab", "/proc/self/mountinfo"); mp != "" {
			return mp
		}
	}
	return ""
}

// resolveExisting is dir with the symlinks of its longest existing
// ancestor resolved, and the rest (not yet made) as written.
func resolveExisting(dir string) string {
	dir = filepath.Clean(dir)
	rest := ""
	for d := dir; ; d = filepath.Dir(d) {
		if real, err := filepath.EvalSymlinks(d); err == nil {
			return filepath.Join(real, rest)
		}
		if d == filepath.Dir(d) {
			return dir
		}
		rest = filepath.Join(filepath.Base(d), rest)
	}
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
		if filepath.IsAbs(mp) && Within(dir, mp) && len(mp) > len(deepest) {
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

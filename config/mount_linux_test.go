package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A state directory under a mount point of /etc/fstab that nothing is
// mounted on is found (the disk did not mount: pairgate would make an
// empty profile on the mount point); mounted, or not in fstab, it is not.
func TestUnmounted(t *testing.T) {
	dir := t.TempDir()
	fstab := filepath.Join(dir, "fstab")
	os.WriteFile(fstab, []byte(`# <file system> <mount point> <type> <options> <dump> <pass>
UUID=1 /               ext4 errors=remount-ro 0 1
UUID=2 /srv            ext4 defaults 0 2
UUID=3 /srv/open\040claw ext4 defaults,nofail 0 2
UUID=4 none            swap sw 0 0
tmpfs  /srvx           tmpfs defaults 0 0
`), 0o600)
	info := filepath.Join(dir, "mountinfo")
	write := func(points ...string) {
		var b strings.Builder
		for i, p := range points {
			fmt.Fprintf(&b, "%d 1 8:%d / %s rw,relatime shared:1 - ext4 /dev/sda%d rw\n", 20+i, i, p, i)
		}
		os.WriteFile(info, []byte(b.String()), 0o600)
	}
	write("/", "/srv")
	for _, c := range []struct{ stateDir, want string }{
		{"/srv/open claw/gw", "/srv/open claw"},
		{"/srv/open claw", "/srv/open claw"},
		{"/srv/other", ""},
		{"/srvx/gw", "/srvx"},
		{"/home/me/.openclaw", ""},
	} {
		if got := unmountedIn(c.stateDir, fstab, info); got != c.want {
			t.Errorf("%s with /srv mounted: %q, want %q", c.stateDir, got, c.want)
		}
	}
	// The deepest mount point above the directory is the one that holds
	// it.
	write("/", "/srv/open\\040claw")
	if got := unmountedIn("/srv/open claw/gw", fstab, info); got != "" {
		t.Errorf("its own disk mounted, /srv not: %q", got)
	}
	if got := unmountedIn("/srv/other", fstab, info); got != "/srv" {
		t.Errorf("under /srv, not mounted: %q, want /srv", got)
	}
	write("/", "/srv", "/srv/open\\040claw", "/srvx")
	if got := unmountedIn("/srv/open claw/gw", fstab, info); got != "" {
		t.Errorf("everything mounted: %q", got)
	}
	if got := unmountedIn("/srv/x", filepath.Join(dir, "no-fstab"), info); got != "" {
		t.Errorf("no fstab: %q", got)
	}
}

// A symlink to a mount point leads to it: a state directory through a
// link is refused as the one it leads to (the check compared the path as
// written, and a linked data directory got past it).
func TestResolveExisting(t *testing.T) {
	dir, _ := filepath.EvalSymlinks(t.TempDir())
	os.MkdirAll(filepath.Join(dir, "mnt"), 0o755)
	os.Symlink(filepath.Join(dir, "mnt"), filepath.Join(dir, "link"))
	for in, want := range map[string]string{
		filepath.Join(dir, "link", "gw", "nodes"): filepath.Join(dir, "mnt", "gw", "nodes"),
		filepath.Join(dir, "link"):                filepath.Join(dir, "mnt"),
		filepath.Join(dir, "plain", "gw"):         filepath.Join(dir, "plain", "gw"),
	} {
		if got := resolveExisting(in); got != want {
			t.Errorf("resolveExisting(%s) = %s, want %s", in, got, want)
		}
	}
}

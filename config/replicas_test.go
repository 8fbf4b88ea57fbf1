package config

import (
	"strings"
	"testing"
)

func TestReplicaParses(t *testing.T) {
	cfg, err := Parse([]byte("profiles:\n  - name: a\n    stateDir: /srv/a\n    keyFile: ~/keys/a.key\n    restoreIfMissing: true\n    replicas:\n      - url: s3://bucket/pairgate/a?endpoint=http://127.0.0.1:9000&sseCustomerKey=c2VjcmV0\n"+
		"  - name: b\n    stateDir: /srv/b\n    replicas:\n      - url: file:///backups/b\n"), env(map[string]string{"HOME": "/h"}))
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.Profiles[0], cfg.Profiles[1]
	if !a.Replicated() || !a.RestoreIfMissing || a.KeyPath() != "/h/keys/a.key" || b.KeyPath() != "/srv/b/nodes/pairing.key" || b.RestoreIfMissing {
		t.Fatalf("profiles %+v %+v", a, b)
	}
	if got := a.Replicas[0].RedactedURL(); got != "s3://bucket/pairgate/a" {
		t.Fatalf("redacted %s", got)
	}
	if got := b.Replicas[0].RedactedURL(); got != "file:///backups/b" {
		t.Fatalf("redacted %s", got)
	}
}

func TestReplicaValidationNamesKeyAndFix(t *testing.T) {
	rep := func(url string) string {
		return "profiles:\n  - name: a\n    stateDir: /srv/a\n    replicas:\n      - url: " + url + "\n"
	}
	for _, tc := range []struct{ name, yaml, want string }{
		{"ftp", rep("ftp://h/x"), `config f: profiles[0].replicas[0].url: "ftp://h/x" is not a replica URL (s3:// or file://); write e.g. url: s3://`},
		{"no scheme", rep("/backups/a"), `config f: profiles[0].replicas[0].url: "/backups/a" is not a replica URL`},
		{"credentials", rep("s3://AKIA:hunter2@bucket/a"), "config f: profiles[0].replicas[0].url: holds credentials; remove them from the URL"},
		{"no bucket", rep("s3:///a"), "config f: profiles[0].replicas[0].url: s3:///a names no bucket"},
		{"bad endpoint", rep("s3://b/a?endpoint=127.0.0.1:9000"), "config f: profiles[0].replicas[0].url: its endpoint is not an http(s) URL"},
		{"file two slashes", rep("file://backups/a"), "config f: profiles[0].replicas[0].url: file://backups/a is not a file URL of an absolute directory; write three slashes"},
		{"file in state dir", rep("file:///srv/a/backup"), "config f: profiles[0].replicas[0].url: the directory is inside the profile's state directory"},
		{"not a URL", rep("\"s3://b/%zz\""), "config f: profiles[0].replicas[0].url: is not a URL"},
		{"two", rep("file:///b1\n      - url: file:///b2"), "config f: profiles[0].replicas: 2 replicas are given; Litestream streams a database to one"},
		{"shared", rep("file:///b") + "  - name: c\n    replicas:\n      - url: file:///b\n", "config f: profiles[1].replicas[0].url: is also profiles[0].replicas[0].url; give each profile its own replica path"},
		{"shared, spelled otherwise", rep("file:///r/b") + "  - name: c\n    replicas:\n      - url: file:///r/./x/..//b/\n", "config f: profiles[1].replicas[0].url: is also profiles[0].replicas[0].url"},
		{"shared S3 path", rep("s3://Bkt/p/a?endpoint=https://s3.example") + "  - name: c\n    replicas:\n      - url: s3://bkt/p//a/?endpoint=https://s3.example/\n", "config f: profiles[1].replicas[0].url: is also profiles[0].replicas[0].url"},
		{"restore without replica", "profiles:\n  - name: a\n    restoreIfMissing: true\n", "config f: profiles[0].restoreIfMissing: there is no replica to restore from"},
		{"shared keyFile", "profiles:\n  - name: a\n    stateDir: /srv/a\n    keyFile: /k/a.key\n  - name: b\n    stateDir: /srv/b\n    keyFile: /k/a.key\n", `config f: profiles[1].keyFile: /k/a.key is also the key of profile "a"; give each profile its own key file`},
		{"keyFile is another's default", "profiles:\n  - name: a\n    stateDir: /srv/a\n  - name: b\n    stateDir: /srv/b\n    keyFile: /srv/a/nodes/pairing.key\n", `config f: profiles[1].keyFile: /srv/a/nodes/pairing.key is also the key of profile "a"`},
		{"relative keyFile", "profiles:\n  - name: a\n    keyFile: keys/a\n", `config f: profiles[0].keyFile: "keys/a" is not an absolute path`},
		{"unknown key", rep("file:///b\n        interval: 1s"), "config f: profiles[0].replicas[0].interval: unknown key"},
		{"not a list", "profiles:\n  - name: a\n    replicas: file:///b\n", "config f: profiles[0].replicas: want a list"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := validationError(t, tc.yaml)
			if !strings.HasPrefix(got, tc.want) {
				t.Fatalf("error\n got %s\nwant %s", got, tc.want)
			}
			if strings.Contains(got, "hunter2") {
				t.Fatalf("the error shows the secret: %s", got)
			}
		})
	}
}

// Replicas at different places are not one place, however alike.
func TestReplicaPlaces(t *testing.T) {
	same := func(a, b string) bool { return Replica{URL: a}.place() == Replica{URL: b}.place() }
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"file:///r/b", "file:///r/b/", true},
		{"file:///r/b", "file:///r/c", false},
		{"s3://bkt/p/a", "s3://BKT/p/a/", true},
		{"s3://bkt/p/a", "s3://bkt/p/b", false},
		{"s3://bkt/p/a?endpoint=https://one.example", "s3://bkt/p/a?endpoint=https://two.example", false},
		{"s3://bkt/p/a", "file:///bkt/p/a", false},
	} {
		if got := same(c.a, c.b); got != c.same {
			t.Errorf("%s and %s: same place %v, want %v", c.a, c.b, got, c.same)
		}
	}
}

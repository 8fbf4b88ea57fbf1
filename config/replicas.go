package config

import (
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Replica is a destination a profile's database is streamed to (by
// Litestream, db/replica).
type Replica struct {
	// URL is s3://bucket/path[?endpoint=…&region=…] or file:///dir.
	// S3 credentials never appear in it: they come from the environment
	// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or the AWS shared files.
	URL string
}

// RedactedURL is the URL without its query (S3 options may hold an
// encryption key), for logs, /readyz and metrics.
func (r Replica) RedactedURL() string {
	u, err := url.Parse(r.URL)
	if err != nil {
		return "(invalid URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// Replicated reports whether the profile streams its database anywhere.
func (p Profile) Replicated() bool { return len(p.Replicas) > 0 }

func (w *walker) replicas(at string, n *yaml.Node) []Replica {
	return listOf(w, at, n, "write one '- url: …' entry", func(at string, item *yaml.Node) Replica {
		var r Replica
		w.mapping(at, item, map[string]func(string, *yaml.Node){
			"url": func(k string, n *yaml.Node) { r.URL = w.str(k, n) },
		})
		return r
	})
}

// replicaURLFix is the example of a replica URL, written as setting
// writes it ("url: " in the configuration, "--from " on restore's
// command line).
func replicaURLFix(setting string) string {
	return "write e.g. " + setting + "s3://bucket/pairgate/NAME?endpoint=https://s3.example (credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) or " + setting + "file:///var/backups/pairgate/NAME"
}

// validateReplicas checks a profile's replica and key settings; at is the
// profile's key path. seen maps each replica URL already taken to its key.
func (p Profile) validateReplicas(at string, seen map[string]string) error {
	if p.KeyFile != "" && !filepath.IsAbs(p.KeyFile) {
		return keyError(at+".keyFile", fmt.Sprintf("%q is not an absolute path", p.KeyFile), "write the absolute path of the profile's 32-byte key, e.g. /etc/pairgate/keys/"+p.Name+".key")
	}
	if p.RestoreIfMissing && !p.Replicated() {
		return keyError(at+".restoreIfMissing", "there is no replica to restore from", "add a replicas entry, or remove restoreIfMissing")
	}
	if len(p.Replicas) > 1 {
		// Litestream 0.5 streams one database to one replica (0.3's several
		// replicas per database were dropped upstream).
		return keyError(at+".replicas", fmt.Sprintf("%d replicas are given; Litestream streams a database to one", len(p.Replicas)), "keep one, and copy it further with the storage's own replication (e.g. S3 bucket replication)")
	}
	for j, r := range p.Replicas {
		key := fmt.Sprintf("%s.replicas[%d].url", at, j)
		if problem, fix := r.check("url: "); problem != "" {
			return keyError(key, problem, fix)
		}
		if dir, ok := r.FileDir(); ok && Within(dir, p.StateDir) {
			return keyError(key, "the directory is inside the profile's state directory", "replicate to another disk or host; a copy on the same disk dies with it")
		}
		place := r.place()
		if other, dup := seen[place]; dup {
			return keyError(key, "is also "+other, "give each profile its own replica path: two databases in one replica overwrite each other")
		}
		seen[place] = key
	}
	return nil
}

// place is where the replica is, however its URL spells it: a file URL's
// clean path; an S3 URL's bucket, clean path and endpoint. Two replicas
// at one place overwrite each other.
func (r Replica) place() string {
	u, err := url.Parse(r.URL)
	if err != nil {
		return r.URL
	}
	if u.Scheme == "file" {
		return "file:" + filepath.Clean(u.Path)
	}
	return u.Scheme + "://" + strings.ToLower(u.Host) + path.Clean("/"+u.Path) + " " + strings.TrimRight(u.Query().Get("endpoint"), "/")
}

// FileDir is the directory of a file:// replica.
func (r Replica) FileDir() (string, bool) {
	u, err := url.Parse(r.URL)
	if err != nil || u.Scheme != "file" {
		return "", false
	}
	return filepath.Clean(u.Path), true
}

// CheckFlag says what is wrong with the replica's URL, if anything, as
// given with --from (restore's flag).
func (r Replica) CheckFlag() error {
	if problem, fix := r.check("--from "); problem != "" {
		return fmt.Errorf("%s; %s", problem, fix)
	}
	return nil
}

func (r Replica) check(setting string) (problem, fix string) {
	u, err := url.Parse(r.URL)
	if err != nil {
		return "is not a URL", replicaURLFix(setting)
	}
	if u.User != nil {
		return "holds credentials", "remove them from the URL: give S3 keys in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or the AWS shared credentials file), never in the configuration"
	}
	switch u.Scheme {
	case "s3":
		if u.Host == "" {
			return fmt.Sprintf("%s names no bucket", r.RedactedURL()), replicaURLFix(setting)
		}
		if e := u.Query().Get("endpoint"); e != "" {
			if eu, err := url.Parse(e); err != nil || (eu.Scheme != "http" && eu.Scheme != "https") || eu.Host == "" {
				return "its endpoint is not an http(s) URL", "write e.g. ?endpoint=https://s3.example"
			}
		}
	case "file":
		if u.Host != "" || !filepath.IsAbs(u.Path) || u.RawQuery != "" {
			return fmt.Sprintf("%s is not a file URL of an absolute directory", r.RedactedURL()), "write three slashes: file:///var/backups/pairgate/NAME"
		}
	default:
		return fmt.Sprintf("%q is not a replica URL (s3:// or file://)", r.RedactedURL()), replicaURLFix(setting)
	}
	return "", ""
}

// Within reports whether path is dir or lies under it.
func Within(path, dir string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

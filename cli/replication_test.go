package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db/replica"
	"github.com/pairgate/pairgate/db/replica/replicatest"
	"github.com/pairgate/pairgate/server/client"
)

// writeReplicatedConfig writes a configuration serving one profile from
// stateDir, replicated to url, its key kept at keyFile.
func writeReplicatedConfig(t *testing.T, stateDir, keyFile, url string, restoreIfMissing bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pairgate.yaml")
	doc := fmt.Sprintf("profiles:\n  - name: default\n    stateDir: %s\n    keyFile: %s\n    restoreIfMissing: %v\n    replicas:\n      - url: %q\n", stateDir, keyFile, restoreIfMissing, url)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// approveNodes asks and approves n nodes over REST, returning the tokens
// of the approvals acknowledged.
func approveNodes(t *testing.T, api *client.Client, prefix string, n int) map[string]string {
	t.Helper()
	acked := map[string]string{}
	for i := range n {
		node := fmt.Sprintf("%s-%03d", prefix, i)
		req, err := api.Request(t.Context(), "default", client.NodeRequest{NodeID: node})
		if err != nil {
			t.Fatalf("request %s: %v", node, err)
		}
		a, err := api.Approve(t.Context(), "default", req.Request.RequestID)
		if err != nil {
			t.Fatalf("approve %s: %v", node, err)
		}
		acked[node] = a.Node.Token
	}
	return acked
}

// replicationStatus reads the profile's replication from /readyz.
func replicationStatus(t *testing.T, api *client.Client) replica.Status {
	t.Helper()
	r, err := api.Ready(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var st replica.Status
	if err := json.Unmarshal(r.Replication["default"], &st); err != nil {
		t.Fatalf("/readyz shows no replication for the profile: %v", err)
	}
	return st
}

// waitReplicated polls /readyz until a sync that began at or after since
// succeeded, within a minute (a replica that never catches up fails).
func waitReplicated(t *testing.T, api *client.Client, since time.Time) replica.Status {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		st := replicationStatus(t, api)
		if st.State == "ok" && st.SyncedAtMs >= since.UnixMilli() {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not catch up within a minute: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func newAPI(t *testing.T, url, token string) *client.Client {
	t.Helper()
	api, err := client.New(url, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	return api
}

// TestKilledReplicatedServerMovesToAnotherHost serves a replicated profile
// in a process of its own, approves 200 nodes, waits until /readyz says a
// sync that began after the last acknowledgement succeeded, approves some
// more, and kills the process with SIGKILL. Another state directory (the
// "other host") is restored from the replica — with `pairgate restore`
// from a file replica, by restoreIfMissing from an S3 one — and refused
// while its key is missing or wrong; served with the right key, every
// approval acknowledged before the confirmed sync verifies. How many of
// the later ones survived is the measured loss window.
func TestKilledReplicatedServerMovesToAnotherHost(t *testing.T) {
	s3 := replicatest.S3(t)
	for _, tc := range []struct {
		kind string
		url  string
	}{
		{"file", "file://" + filepath.Join(t.TempDir(), "replica")},
		{"s3", s3("hosts/default")},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			keyFile := filepath.Join(t.TempDir(), "default.key")
			stateDir := filepath.Join(t.TempDir(), "gw")
			t.Setenv("PAIRGATE_CONFIG", writeReplicatedConfig(t, stateDir, keyFile, tc.url, false))
			cmd, url := startServerProcess(t, stateDir)
			token, err := config.ReadTokenFile(filepath.Join(stateDir, "nodes", "operator.token"))
			if err != nil {
				t.Fatal(err)
			}
			api := newAPI(t, url, token)
			synced := approveNodes(t, api, "synced", 200)
			lastAck := time.Now()
			if st := waitReplicated(t, api, lastAck); st.TXID == 0 {
				t.Fatalf("a replica that caught up names no transaction: %+v", st)
			}
			window := approveNodes(t, api, "window", 20)
			atKill := replicationStatus(t, api)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()

			// The other host: the operator copied the key to its own place.
			otherKey := filepath.Join(t.TempDir(), "default.key")
			otherDir := filepath.Join(t.TempDir(), "gw")
			restoreIfMissing := tc.kind == "s3"
			getenv := testEnv(t, map[string]string{"PAIRGATE_CONFIG": writeReplicatedConfig(t, otherDir, otherKey, tc.url, restoreIfMissing)})
			if !restoreIfMissing {
				var out, errb bytes.Buffer
				if code := Run(context.Background(), []string{"restore", "--state-dir", otherDir, "--from", tc.url}, getenv, strings.NewReader(""), &out, &errb); code != 0 {
					t.Fatalf("restore: exit %d\n%s%s", code, out.String(), errb.String())
				}
				if !strings.Contains(out.String(), "The key is not in the replica: copy the profile's pairing.key from the old host") {
					t.Fatalf("restore does not say what to do about the key:\n%s", out.String())
				}
				// Never over an existing database.
				errb.Reset()
				if code := Run(context.Background(), []string{"restore", "--state-dir", otherDir, "--from", tc.url}, getenv, strings.NewReader(""), &out, &errb); code != 1 || !strings.Contains(errb.String(), "a database is already there") {
					t.Fatalf("restore over a database: exit %d\n%s", code, errb.String())
				}
			}
			// No key: refused, naming the key to restore.
			var errb bytes.Buffer
			code := Run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0"}, getenv, strings.NewReader(""), &bytes.Buffer{}, &errb)
			if code != exitConfig || !strings.Contains(errb.String(), otherKey+" is missing") {
				t.Fatalf("serve without the key: exit %d\n%s", code, errb.String())
			}
			// A wrong key: refused too.
			if err := os.WriteFile(otherKey, bytes.Repeat([]byte{7}, 32), 0o600); err != nil {
				t.Fatal(err)
			}
			errb.Reset()
			code = Run(context.Background(), []string{"serve", "--listen", "127.0.0.1:0"}, getenv, strings.NewReader(""), &bytes.Buffer{}, &errb)
			if code != exitConfig || !strings.Contains(errb.String(), "does not open the tokens") {
				t.Fatalf("serve with a wrong key: exit %d\n%s", code, errb.String())
			}
			key, err := os.ReadFile(keyFile)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(otherKey, key, 0o600); err != nil {
				t.Fatal(err)
			}
			srv := startServe(t, getenv)
			otherAPI := newAPI(t, srv.url, "")
			for node, token := range synced {
				if v, err := otherAPI.Verify(t.Context(), "default", node, token); err != nil || !v.OK {
					t.Fatalf("%s was approved and synced before the kill, and does not verify on the other host (%v)", node, err)
				}
			}
			kept := 0
			for node, token := range window {
				if v, _ := otherAPI.Verify(t.Context(), "default", node, token); v.OK {
					kept++
				}
			}
			t.Logf("%s: all %d approvals synced before the kill verify on the other host; of %d approved after the confirmed sync (lag %d ms, %d errors, at the kill), %d survived",
				tc.kind, len(synced), len(window), atKill.LagMs, atKill.Errors, kept)
			// The restored profile replicates on; pairgate health and
			// /metrics show it.
			waitReplicated(t, otherAPI, time.Now())
			if code, out, errs := cliRun(getenv, "health", "--url", srv.url); code != 0 || !strings.Contains(out, `"replication":{"default":{`) {
				t.Fatalf("health: exit %d\n%s%s", code, out, errs)
			}
			resp, err := http.Get(srv.url + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, m := range []string{"pairgate_replication_lag_seconds{profile=\"default\"}", "pairgate_replication_last_sync_timestamp_seconds{profile=\"default\"}", "pairgate_replication_errors_total{profile=\"default\"} 0"} {
				if !strings.Contains(string(body), m) {
					t.Fatalf("/metrics has no %s", m)
				}
			}
		})
	}
}

func TestServeRefusesABadReplicaURL(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "gw")
	path := filepath.Join(t.TempDir(), "pairgate.yaml")
	if err := os.WriteFile(path, []byte("profiles:\n  - name: default\n    stateDir: "+stateDir+"\n    replicas:\n      - url: s3://AKIAEXAMPLE:hunter2@backups/pairgate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var errb bytes.Buffer
	code := Run(context.Background(), []string{"serve", "--config", path, "--listen", "127.0.0.1:0"}, testEnv(t, nil), strings.NewReader(""), &bytes.Buffer{}, &errb)
	if code != exitConfig || !strings.Contains(errb.String(), "profiles[0].replicas[0].url: holds credentials; remove them from the URL") || strings.Contains(errb.String(), "hunter2") {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	if _, err := os.Stat(stateDir); err == nil {
		t.Fatal("a refused start created the state directory")
	}
}

// A replica whose client cannot be made (AWS_CA_BUNDLE set: Litestream's
// S3 client takes no CA bundle) is refused before start-up makes the state
// directory and the operator token file (an outside trial found both).
func TestServeRefusesAnUnusableReplicaFirst(t *testing.T) {
	stateDir := filepath.Join(t.TempDir(), "gw")
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(bundle, []byte("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"), 0o600)
	path := writeReplicatedConfig(t, stateDir, filepath.Join(t.TempDir(), "k"), "s3://bkt/p?endpoint=http://127.0.0.1:1&region=us-east-1", false)
	env := testEnv(t, map[string]string{"AWS_CA_BUNDLE": bundle, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"})
	t.Setenv("AWS_CA_BUNDLE", bundle) // the AWS SDK reads the process's environment
	var errb bytes.Buffer
	code := Run(context.Background(), []string{"serve", "--config", path, "--listen", "127.0.0.1:0"}, env, strings.NewReader(""), &bytes.Buffer{}, &errb)
	if code != exitConfig || !strings.Contains(errb.String(), "unset AWS_CA_BUNDLE") {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	if _, err := os.Stat(stateDir); err == nil {
		t.Fatal("a refused start created the state directory")
	}
}

func TestRestoreRefuses(t *testing.T) {
	served := filepath.Join(t.TempDir(), "served")
	replicaDir := filepath.Join(t.TempDir(), "replica")
	os.MkdirAll(replicaDir, 0o755) // empty: no backup in it
	replicaURL := "file://" + replicaDir
	startServe(t, testEnv(t, map[string]string{"OPENCLAW_STATE_DIR": served}))
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no replica", []string{"--state-dir", t.TempDir()}, exitUsage, "restore: no replica: give --from URL"},
		{"bad url", []string{"--state-dir", t.TempDir(), "--from", "ftp://h/x"}, exitUsage, `restore: --from: "ftp://h/x" is not a replica URL (s3:// or file://); write e.g. --from s3://`},
		{"missing directory", []string{"--state-dir", t.TempDir(), "--from", replicaURL + "-nope"}, exitFailed, "restore: " + replicaDir + "-nope does not exist: is the path the one the old host replicated to"},
		{"future timestamp", []string{"--state-dir", t.TempDir(), "--from", replicaURL, "--timestamp", "2999-01-01T00:00:00Z"}, exitUsage, "restore: --timestamp 2999-01-01T00:00:00Z is in the future"},
		{"bad timestamp", []string{"--state-dir", t.TempDir(), "--from", replicaURL, "--timestamp", "yesterday"}, exitUsage, `restore: --timestamp "yesterday" is not an RFC 3339 time`},
		{"served", []string{"--state-dir", served, "--from", replicaURL}, exitFailed, "a served database is never restored over"},
		{"empty replica", []string{"--state-dir", t.TempDir(), "--from", replicaURL}, exitFailed, "holds no backup of a database"},
		{"empty replica as of a time", []string{"--state-dir", t.TempDir(), "--from", replicaURL, "--timestamp", "2026-01-01T00:00:00Z"}, exitFailed, "holds no backup of a database as of 2026-01-01T00:00:00Z: give a later --timestamp, or none for the newest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Run(context.Background(), append([]string{"restore"}, tc.args...), testEnv(t, nil), strings.NewReader(""), &out, &errb)
			if code != tc.code || !strings.Contains(errb.String(), tc.want) {
				t.Fatalf("exit %d, want %d saying %q:\n%s%s", code, tc.code, tc.want, out.String(), errb.String())
			}
		})
	}
	// A failed restore into a new state directory leaves none behind.
	fresh := filepath.Join(t.TempDir(), "new-host", "work")
	if code, _, errs := cliRun(testEnv(t, nil), "restore", "--state-dir", fresh, "--from", replicaURL); code != exitFailed {
		t.Fatalf("restore from an empty replica: exit %d %s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(fresh, "nodes")); err == nil {
		t.Fatal("a failed restore left the nodes directory (and its lock file) it made")
	}
	// One into the state directory being served leaves it as it was.
	if _, err := os.Stat(filepath.Join(served, "nodes", "pairing.lock")); err != nil {
		t.Fatalf("the served profile's lock file: %v", err)
	}
}

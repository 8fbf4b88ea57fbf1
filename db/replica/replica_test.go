package replica

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/db/replica/replicatest"
	"github.com/pairgate/pairgate/internal/syncbuf"
)

var byTest = db.Origin{Actor: "test"}

func profileAt(t *testing.T, name, url string) config.Profile {
	p := config.NewProfile(name, t.TempDir())
	p.Replicas = []config.Replica{{URL: url}}
	if err := p.EnsureNodesDir(); err != nil {
		t.Fatal(err)
	}
	return p
}

func openStore(t *testing.T, p config.Profile) *db.Store {
	t.Helper()
	opts := db.OptionsFor(p)
	opts.Migrate = true
	s, err := db.Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pair requests and approves n nodes, returning their tokens by node id.
func pair(t *testing.T, s *db.Store, prefix string, n int) map[string]string {
	t.Helper()
	ctx := context.Background()
	tokens := map[string]string{}
	for i := range n {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		req, err := s.Request(ctx, db.RequestInput{NodeID: id}, byTest)
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.Approve(ctx, req.Request.RequestID, byTest)
		if err != nil {
			t.Fatal(err)
		}
		tokens[id] = a.Node.Token
	}
	return tokens
}

// waitSynced polls the status until a sync that began at or after since
// succeeded (bounded: a replica that never catches up fails the test).
func waitSynced(t *testing.T, r *Replicator, profile string, since time.Time) Status {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, ok := r.Status(profile)
		if !ok {
			t.Fatalf("no status for %s", profile)
		}
		if st.SyncedAtMs >= since.UnixMilli() && st.State == "ok" {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica did not catch up: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// restoreElsewhere restores p's replica at url (as of at; zero: the
// newest) into a new state directory, with p's key copied, as an operator
// on another host would, and opens it until the test ends.
func restoreElsewhere(t *testing.T, p config.Profile, url string, at time.Time) *db.Store {
	t.Helper()
	other := profileAt(t, p.Name, url)
	other.KeyFile = p.KeyPath()
	if err := Restore(context.Background(), url, other.DatabasePath(), at, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	restored := openStore(t, other)
	t.Cleanup(func() { restored.Close() })
	return restored
}

func verifyAll(t *testing.T, s *db.Store, tokens map[string]string) {
	t.Helper()
	for id, token := range tokens {
		v, err := s.Verify(context.Background(), id, token)
		if err != nil || !v.OK {
			t.Fatalf("node %s does not verify after the restore: %+v %v", id, v, err)
		}
	}
}

func TestReplicateThenRestore(t *testing.T) {
	s3 := replicatest.S3(t)
	for _, tc := range []struct{ kind, url string }{
		{"file", "file://" + t.TempDir() + "/default"},
		{"s3", s3("fleet/default")},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			ctx := context.Background()
			logs := &syncbuf.Buffer{}
			log := slog.New(slog.NewTextHandler(logs, nil))
			p := profileAt(t, "default", tc.url)
			st := openStore(t, p)
			r, err := Start(ctx, []config.Profile{p}, log, Options{Interval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			tokens := pair(t, st, "node", 40)
			acked := time.Now()
			status := waitSynced(t, r, "default", acked)
			if status.TXID == 0 || status.Errors != 0 || status.URL != p.Replicas[0].RedactedURL() {
				t.Fatalf("status %+v", status)
			}
			// The restore reads the replica while the source still runs,
			// as after a host died: nothing was closed cleanly.
			other := profileAt(t, "default", tc.url)
			other.KeyFile = p.KeyPath() // the operator copied the key
			if err := Restore(ctx, tc.url, other.DatabasePath(), time.Time{}, log); err != nil {
				t.Fatal(err)
			}
			// Litestream's own restore messages come through our logger.
			if !strings.Contains(logs.String(), "msg=\"post-restore integrity check passed\"") {
				t.Fatalf("Litestream's restore line is not in the given log:\n%s", logs)
			}
			restored := openStore(t, other)
			verifyAll(t, restored, tokens)
			restored.Close()

			// A second restore never overwrites the first.
			if err := Restore(ctx, tc.url, other.DatabasePath(), time.Time{}, log); !errors.Is(err, ErrExists) {
				t.Fatalf("restore over a database: %v", err)
			}
			st.Close()
			if err := r.Close(ctx); err != nil {
				t.Fatal(err)
			}
			if strings.Contains(logs.String(), "test-secret-key") {
				t.Fatal("the log shows the S3 secret")
			}
		})
	}
}

// Close syncs a last time: a change committed just before a clean stop is
// on the replica although no sync ran since.
func TestCloseSyncsTheLastChanges(t *testing.T) {
	ctx := context.Background()
	url := "file://" + t.TempDir() + "/p"
	p := profileAt(t, "p", url)
	st := openStore(t, p)
	// An interval longer than the test: only Close can sync.
	var logs syncbuf.Buffer
	r, err := Start(ctx, []config.Profile{p}, slog.New(slog.NewTextHandler(&logs, nil)), Options{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	waitSynced(t, r, "p", time.Time{})
	tokens := pair(t, st, "late", 3)
	st.Close()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// An operator stopping the server reads that it did (a documentation
	// trial: only the exit status said so).
	if !strings.Contains(logs.String(), `msg="final sync done: the replica holds every acknowledged write" profile=p`) {
		t.Fatalf("no line for the final sync:\n%s", logs.String())
	}
	verifyAll(t, restoreElsewhere(t, p, url, time.Time{}), tokens)
}

func TestFailingReplicaIsReported(t *testing.T) {
	ctx := context.Background()
	// The replica directory's place is taken by a file: every upload fails.
	blocked := filepath.Join(t.TempDir(), "blocked")
	if err := os.WriteFile(blocked, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := profileAt(t, "p", "file://"+blocked)
	st := openStore(t, p)
	defer st.Close()
	var logs syncbuf.Buffer
	r, err := Start(ctx, []config.Profile{p}, slog.New(slog.NewTextHandler(&logs, nil)), Options{Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		// Its final sync fails too, until the deadline.
		closeCtx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if err := r.Close(closeCtx); err == nil {
			t.Error("Close of a replica that never synced succeeded")
		}
	}()
	pair(t, st, "n", 1)
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, _ := r.Status("p")
		if status.State == "failing" && status.Errors > 3 && status.LastError != "" && status.SyncedAtMs == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a failing replica is not reported: %+v", status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := r.Status("other"); ok {
		t.Fatal("a status for a profile that is not replicated")
	}
	// The same failure again and again is one line (a documentation
	// trial: one every 2 s).
	if n := strings.Count(logs.String(), "replication failed; retrying"); n != 1 {
		t.Fatalf("%d lines for one failure, repeated:\n%s", n, logs.String())
	}
}

func TestRestoreIfMissing(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	url := "file://" + t.TempDir() + "/p"
	p := profileAt(t, "p", url)
	p.RestoreIfMissing = true
	// An empty replica: a new profile starts empty.
	if restored, err := RestoreIfMissing(ctx, p, log); restored || err != nil {
		t.Fatalf("empty replica: restored %v, %v", restored, err)
	}
	st := openStore(t, p)
	r, err := Start(ctx, []config.Profile{p}, log, Options{Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tokens := pair(t, st, "n", 2)
	waitSynced(t, r, "p", time.Now())
	// The database exists: nothing to do.
	if restored, err := RestoreIfMissing(ctx, p, log); restored || err != nil {
		t.Fatalf("existing database: restored %v, %v", restored, err)
	}
	st.Close()
	r.Close(ctx)

	other := profileAt(t, "p", url)
	other.RestoreIfMissing, other.KeyFile = true, p.KeyPath()
	if restored, err := RestoreIfMissing(ctx, other, log); !restored || err != nil {
		t.Fatalf("missing database: restored %v, %v", restored, err)
	}
	restoredStore := openStore(t, other)
	defer restoredStore.Close()
	verifyAll(t, restoredStore, tokens)
}

// A restore as of a time brings the state of then: what was approved
// before it, and nothing after.
func TestRestoreAsOfATime(t *testing.T) {
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	url := "file://" + t.TempDir() + "/p"
	p := profileAt(t, "p", url)
	st := openStore(t, p)
	r, err := Start(ctx, []config.Profile{p}, log, Options{Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	before := pair(t, st, "before", 3)
	waitSynced(t, r, "p", time.Now())
	asOf := time.Now()
	time.Sleep(20 * time.Millisecond) // the later changes carry later times
	after := pair(t, st, "after", 3)
	waitSynced(t, r, "p", time.Now())
	st.Close()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}

	restored := restoreElsewhere(t, p, url, asOf)
	verifyAll(t, restored, before)
	for id, token := range after {
		if v, err := restored.Verify(ctx, id, token); err != nil || v.OK {
			t.Fatalf("%s, approved after the restore's time, is there: %+v %v", id, v, err)
		}
	}
}

// A replica that failed from the start is synced at Close too, and Close
// fails when it cannot be: the server must not exit 0 with acknowledged
// writes missing from the replica. Once the replica is reachable again,
// Close succeeds and everything is there.
func TestCloseFailsWhenTheFinalSyncFails(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	blocked := filepath.Join(dir, "replica")
	if err := os.WriteFile(blocked, []byte("x"), 0o600); err != nil { // a file where the replica's directory goes
		t.Fatal(err)
	}
	url := "file://" + blocked
	p := profileAt(t, "p", url)
	st := openStore(t, p)
	r, err := Start(ctx, []config.Profile{p}, slog.New(slog.DiscardHandler), Options{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tokens := pair(t, st, "n", 2)
	st.Close()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := r.Close(short); err == nil || !strings.Contains(err.Error(), "the final sync to") {
		t.Fatalf("Close with a replica failing from the start = %v, want the final sync's failure", err)
	}

	// Started again with the replica reachable, Close carries it all.
	os.Remove(blocked)
	st = openStore(t, p)
	r, err = Start(ctx, []config.Profile{p}, slog.New(slog.DiscardHandler), Options{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	// Bounded: a final sync that never succeeds fails the test instead
	// of hanging it (one run on a loaded machine hung here).
	bounded, cancelBounded := context.WithTimeout(ctx, time.Minute)
	defer cancelBounded()
	if err := r.Close(bounded); err != nil {
		t.Fatal(err)
	}
	verifyAll(t, restoreElsewhere(t, p, url, time.Time{}), tokens)
}

// With AWS_CA_BUNDLE set, the AWS SDK cannot give Litestream's S3 client
// the bundle; the refusal says to unset it, in the configuration file's
// name.
func TestCABundleRefusalSaysWhatToDo(t *testing.T) {
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(bundle, []byte("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"), 0o600)
	t.Setenv("AWS_CA_BUNDLE", bundle)
	p := profileAt(t, "p", "s3://bkt/p?endpoint=http://127.0.0.1:1&region=us-east-1")
	_, err := Start(context.Background(), []config.Profile{p}, slog.New(slog.DiscardHandler), Options{ConfigFile: "/etc/pairgate.yaml"})
	if err == nil || !strings.HasPrefix(err.Error(), "config /etc/pairgate.yaml: profiles[0].replicas[0].url: ") || !strings.Contains(err.Error(), "unset AWS_CA_BUNDLE") {
		t.Fatalf("Start with AWS_CA_BUNDLE set = %v", err)
	}
}

// pairgate restore says the same of AWS_CA_BUNDLE as serve (it printed
// the SDK's words alone), and of an endpoint that does not answer, what
// it is, not Litestream's "get v0.3.x time bounds: s3: list generations".
func TestRestoreSaysWhatIsWrongWithTheReplica(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "x")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "y")
	url := "s3://bkt/p?endpoint=http://127.0.0.1:1&region=us-east-1"
	path := filepath.Join(t.TempDir(), "pairing.sqlite")
	quiet := slog.New(slog.DiscardHandler)
	t.Setenv("AWS_CA_BUNDLE", "")
	err := Restore(context.Background(), url, path, time.Time{}, quiet)
	if err == nil || !strings.HasPrefix(err.Error(), "cannot reach the replica at s3://bkt/p (dial tcp 127.0.0.1:1: connect: connection refused)") || strings.Contains(err.Error(), "v0.3.x") {
		t.Fatalf("restore from an endpoint that does not answer = %v", err)
	}
	bundle := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(bundle, []byte("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n"), 0o600)
	t.Setenv("AWS_CA_BUNDLE", bundle)
	if err := Restore(context.Background(), url, path, time.Time{}, quiet); err == nil || !strings.Contains(err.Error(), "unset AWS_CA_BUNDLE") {
		t.Fatalf("restore with AWS_CA_BUNDLE set = %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed restore left %s: %v", path, err)
	}
}

// The final syncs run at once: a replica that is down spends its own
// time, not that of the others, which are synced and not reported.
func TestOneFailingFinalSyncSparesTheOthers(t *testing.T) {
	ctx := context.Background()
	blocked := filepath.Join(t.TempDir(), "replica")
	if err := os.WriteFile(blocked, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := profileAt(t, "bad", "file://"+blocked)
	goodURL := "file://" + t.TempDir() + "/good"
	good := profileAt(t, "good", goodURL)
	stores := []*db.Store{openStore(t, bad), openStore(t, good)}
	r, err := Start(ctx, []config.Profile{bad, good}, slog.New(slog.DiscardHandler), Options{Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tokens := pair(t, stores[1], "g", 2)
	for _, st := range stores {
		st.Close()
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	err = r.Close(short)
	if err == nil || !strings.Contains(err.Error(), `profile "bad"`) || strings.Contains(err.Error(), `profile "good"`) {
		t.Fatalf("Close = %v, want the bad profile's failure only", err)
	}
	verifyAll(t, restoreElsewhere(t, good, goodURL, time.Time{}), tokens)
}

// An outside trial: the profile moved to host B (pairgate restore), B
// approved nodes and stopped, then the old host A started again. Litestream
// took A's database for one restored to an earlier state and wrote it over
// the replica: B's acknowledged approvals were gone from its newest state.
// A now refuses to replicate (and so to serve), and the replica keeps B's.
func TestAStaleHostDoesNotOverwriteTheReplica(t *testing.T) {
	ctx := context.Background()
	url := "file://" + t.TempDir() + "/moved"
	quiet := slog.New(slog.DiscardHandler)
	opts := Options{Interval: 20 * time.Millisecond}

	a := profileAt(t, "default", url)
	st := openStore(t, a)
	r, err := Start(ctx, []config.Profile{a}, quiet, opts)
	if err != nil {
		t.Fatal(err)
	}
	pair(t, st, "a", 3)
	st.Close()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Host B: restored from the replica, it serves and approves.
	b := profileAt(t, "default", url)
	b.KeyFile = a.KeyPath()
	if err := Restore(ctx, url, b.DatabasePath(), time.Time{}, quiet); err != nil {
		t.Fatal(err)
	}
	stB := openStore(t, b)
	rB, err := Start(ctx, []config.Profile{b}, quiet, opts)
	if err != nil {
		t.Fatalf("a host restored from the replica must replicate to it: %v", err)
	}
	onB := pair(t, stB, "b", 2)
	stB.Close()
	if err := rB.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Host A again, unchanged.
	stA := openStore(t, a)
	defer stA.Close()
	_, err = Start(ctx, []config.Profile{a}, quiet, opts)
	var ce *config.Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "another host has served the profile since") || !strings.Contains(err.Error(), "pairgate restore --profile default") {
		t.Fatalf("a stale host started replicating: %v", err)
	}
	// The replica's newest state is still B's.
	verifyAll(t, restoreElsewhere(t, a, url, time.Time{}), onB)

	// B, started again, goes on as before.
	stB = openStore(t, b)
	rB, err = Start(ctx, []config.Profile{b}, quiet, opts)
	if err != nil {
		t.Fatalf("the host that holds the profile: %v", err)
	}
	stB.Close()
	if err := rB.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

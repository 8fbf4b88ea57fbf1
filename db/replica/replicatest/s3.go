// Package replicatest serves tests an S3-compatible object store on
// loopback (gofakes3, in memory), for replicas that are really uploaded
// to and restored from over HTTP.
package replicatest

import (
	"net/http/httptest"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Bucket is the bucket S3 creates.
const Bucket = "pairgate"

// S3 starts an in-memory S3 server on 127.0.0.1 for the test, sets the
// credentials Litestream reads from the environment, and returns the
// replica URL of path in its bucket. The server stops with the test.
func S3(t testing.TB) func(path string) string {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(Bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend).Server())
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ACCESS_KEY_ID", "test-access-key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret-key-never-logged")
	// Litestream's S3 client brings its own HTTP client, which the AWS SDK
	// cannot give a CA bundle: a bundle in the environment fails every
	// client (and loopback HTTP needs none).
	t.Setenv("AWS_CA_BUNDLE", "")
	return func(path string) string {
		return "s3://" + Bucket + "/" + path + "?endpoint=" + srv.URL + "&region=us-east-1"
	}
}

package replica

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pairgate/pairgate/config"
	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/db/replica/replicatest"
)

// BenchmarkRequestApproveReplicated runs request → approve cycles (two
// committed transactions, synchronous=FULL) from 1 and 8 clients with
// replication off, to a file replica and to an S3 replica on loopback, in
// one run. It reports cycles/s, and the replica's lag when the last cycle
// was acknowledged.
func BenchmarkRequestApproveReplicated(b *testing.B) {
	s3 := replicatest.S3(b)
	for _, kind := range []string{"off", "file", "s3"} {
		for _, clients := range []int{1, 8} {
			b.Run(fmt.Sprintf("replica=%s/clients=%d", kind, clients), func(b *testing.B) {
				p := config.NewProfile("bench", b.TempDir())
				switch kind {
				case "file":
					p.Replicas = []config.Replica{{URL: "file://" + b.TempDir()}}
				case "s3":
					p.Replicas = []config.Replica{{URL: s3(fmt.Sprintf("bench/%d/%d", clients, b.N))}}
				}
				if err := p.EnsureNodesDir(); err != nil {
					b.Fatal(err)
				}
				opts := db.OptionsFor(p)
				opts.Migrate = true
				s, err := db.Open(context.Background(), opts)
				if err != nil {
					b.Fatal(err)
				}
				r, err := Start(context.Background(), []config.Profile{p}, slog.New(slog.DiscardHandler), Options{})
				if err != nil {
					b.Fatal(err)
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				for range clients {
					wg.Go(func() {
						for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
							res, err := s.Request(context.Background(), db.RequestInput{NodeID: "n-" + strconv.FormatInt(i, 10)}, byTest)
							if err == nil {
								_, err = s.Approve(context.Background(), res.Request.RequestID, byTest)
							}
							if err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
				if st, ok := r.Status("bench"); ok {
					b.ReportMetric(float64(st.LagMs), "lag-ms")
				}
				s.Close()
				closeCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				if err := r.Close(closeCtx); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

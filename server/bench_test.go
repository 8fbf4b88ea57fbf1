package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/pairgate/pairgate/db"
	"github.com/pairgate/pairgate/server/rpc"
)

// benchConn is a lean operator connection for benchmarks: no strict
// checks, one reader, requests pipelined.
type benchConn struct {
	ws *websocket.Conn
}

func dialBench(b *testing.B, ts *testServer) *benchConn {
	b.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(ts.ws+"/", nil)
	if err != nil {
		b.Fatal(err)
	}
	ws.ReadMessage() // challenge
	ws.WriteJSON(map[string]any{"type": "req", "id": "c", "method": "connect", "params": connectFrame("operator", testToken, nil)})
	if _, _, err := ws.ReadMessage(); err != nil {
		b.Fatal(err)
	}
	return &benchConn{ws: ws}
}

type benchRes struct {
	ID      string          `json:"id"`
	OK      bool            `json:"ok"`
	Payload json.RawMessage `json:"payload"`
	Error   *rpc.Error      `json:"error"`
}

// call sends one request and waits for its answer (skipping events).
func (c *benchConn) call(b *testing.B, id, method string, params any) benchRes {
	c.ws.WriteJSON(map[string]any{"type": "req", "id": id, "method": method, "params": params})
	for {
		var r benchRes
		if err := c.ws.ReadJSON(&r); err != nil {
			b.Fatal(err)
		}
		if r.ID == id {
			if !r.OK {
				b.Fatalf("%s: %+v", method, r.Error)
			}
			return r
		}
	}
}

// pairNodes pairs n nodes through the store and returns their tokens.
func pairNodes(b *testing.B, st *db.Store, n int) []string {
	b.Helper()
	tokens := make([]string, n)
	for i := range n {
		res, err := st.Request(context.Background(), db.RequestInput{NodeID: "seed-" + strconv.Itoa(i)}, db.Origin{Actor: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		a, err := st.Approve(context.Background(), res.Request.RequestID, db.Origin{Actor: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = a.Node.Token
	}
	return tokens
}

func reportLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkWSVerify: node.pair.verify over real sockets, each connection
// pipelining up to 16 requests in flight.
func BenchmarkWSVerify(b *testing.B) {
	ts := startServer(b)
	tokens := pairNodes(b, ts.byName["default"].Store, 100)
	for _, conns := range []int{1, 8} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			cs := make([]*benchConn, conns)
			for i := range cs {
				cs[i] = dialBench(b, ts)
			}
			var mu sync.Mutex
			var all []time.Duration
			b.ResetTimer()
			var wg sync.WaitGroup
			for ci, c := range cs {
				n := b.N / conns
				if ci < b.N%conns {
					n++
				}
				wg.Go(func() {
					sent := make([]time.Time, n)
					window := make(chan struct{}, 16)
					lat := make([]time.Duration, 0, n)
					done := make(chan struct{})
					go func() {
						defer close(done)
						for range n {
							var r benchRes
							if err := c.ws.ReadJSON(&r); err != nil {
								b.Error(err)
								return
							}
							i, _ := strconv.Atoi(r.ID)
							lat = append(lat, time.Since(sent[i]))
							<-window
						}
					}()
					for i := range n {
						window <- struct{}{}
						k := (i + ci) % len(tokens)
						sent[i] = time.Now()
						c.ws.WriteJSON(map[string]any{"type": "req", "id": strconv.Itoa(i), "method": "node.pair.verify",
							"params": map[string]string{"nodeId": "seed-" + strconv.Itoa(k), "token": tokens[k]}})
					}
					<-done
					mu.Lock()
					all = append(all, lat...)
					mu.Unlock()
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
			reportLatency(b, all)
			for _, c := range cs {
				c.ws.Close()
			}
		})
	}
}

// BenchmarkWSCycle: request → approve → verify of a new node over one WS
// connection, with the store holding n paired nodes.
func BenchmarkWSCycle(b *testing.B) {
	for _, n := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("paired=%d", n), func(b *testing.B) {
			ts := startServer(b)
			pairNodes(b, ts.byName["default"].Store, n)
			c := dialBench(b, ts)
			defer c.ws.Close()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				id := "cycle-" + strconv.Itoa(i)
				var req db.RequestResult
				json.Unmarshal(c.call(b, "r"+id, "node.pair.request", map[string]string{"nodeId": id}).Payload, &req)
				var a db.Approval
				json.Unmarshal(c.call(b, "a"+id, "node.pair.approve", map[string]string{"requestId": req.Request.RequestID}).Payload, &a)
				var v db.Verification
				json.Unmarshal(c.call(b, "v"+id, "node.pair.verify", map[string]string{"nodeId": id, "token": a.Node.Token}).Payload, &v)
				if !v.OK {
					b.Fatal("verify failed")
				}
				lat = append(lat, time.Since(start))
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
			reportLatency(b, lat)
		})
	}
}

// BenchmarkFanout1000: each op is one request made over REST while 1,000
// operator connections listen; latency runs from just before the request
// is sent (before its commit) to each connection's receipt of the event.
func BenchmarkFanout1000(b *testing.B) {
	ts := startServer(b)
	const listeners = 1000
	type arrival struct{ at time.Time }
	arrivals := make(chan arrival, listeners*16)
	conns := make([]*websocket.Conn, listeners)
	for i := range conns {
		bc := dialBench(b, ts)
		conns[i] = bc.ws
		go func() {
			for {
				if _, _, err := bc.ws.ReadMessage(); err != nil {
					return
				}
				arrivals <- arrival{at: time.Now()}
			}
		}()
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	client := &http.Client{}
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		body := strings.NewReader(`{"nodeId":"fan-` + strconv.Itoa(i) + `"}`)
		req, _ := http.NewRequest("POST", ts.url+"/api/v1/profiles/default/requests", body)
		req.Header.Set("Authorization", "Bearer "+testToken)
		sent := time.Now()
		resp, err := client.Do(req)
		if err != nil || resp.StatusCode != 201 {
			b.Fatalf("request: %v %v", err, resp)
		}
		resp.Body.Close()
		for range listeners {
			select {
			case a := <-arrivals:
				lat = append(lat, a.at.Sub(sent))
			case <-time.After(10 * time.Second):
				b.Fatal("an event did not arrive")
			}
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

package webhook

import (
	"testing"
	"time"

	"github.com/pairgate/pairgate/config"
)

// The example of the Standard Webhooks reference libraries: their secret,
// message id, timestamp and payload, and the signature they expect.
func TestSignMatchesTheStandardWebhooksExample(t *testing.T) {
	key, err := config.Webhook{Secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}.SigningKey()
	if err != nil {
		t.Fatal(err)
	}
	got := Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("signature %s, want %s", got, want)
	}
}

func TestBackoffGrowsWithJitterAndCaps(t *testing.T) {
	for attempt, base := range map[int]time.Duration{1: 5 * time.Second, 2: 10 * time.Second, 5: 80 * time.Second, 11: time.Hour, 400: time.Hour} {
		for range 50 {
			if d := Backoff(attempt); d < base/2 || d > base {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", attempt, d, base/2, base)
			}
		}
	}
	// Over a day of failures it keeps retrying: the total of the waits
	// before the window closes is what the retry window measures.
	var total time.Duration
	n := 0
	for total < DefaultRetryWindow {
		n++
		total += Backoff(n)
	}
	if n < 20 {
		t.Fatalf("only %d attempts in 24 h", n)
	}
}

// Package backoff computes the waits between retries: exponential, capped,
// with full jitter, so that clients cut off together do not come back
// together. The control-plane client and the agent's loop both use it.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Ceiling returns base·2^k, at most limit (limit also when that overflows).
func Ceiling(base time.Duration, k int, limit time.Duration) time.Duration {
	if k < 31 {
		if e := base << k; e > 0 && e < limit {
			return e
		}
	}
	return limit
}

// Jitter returns a wait uniform in [0, ceiling] (full jitter).
func Jitter(ceiling time.Duration) time.Duration {
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// Spread returns d ±20%, so that periodic work across a fleet does not
// line up.
func Spread(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

package overlay

import "time"

// tokenBucket limits how often ICMP errors are generated. It is owned by one
// goroutine, so it needs no synchronisation, and it never allocates.
type tokenBucket struct {
	perSecond float64
	burst     float64
	tokens    float64
	last      time.Time
}

func newTokenBucket(perSecond, burst float64) tokenBucket {
	return tokenBucket{perSecond: perSecond, burst: burst, tokens: burst}
}

// allow takes a token if one is available at now.
func (b *tokenBucket) allow(now time.Time) bool {
	if !b.last.IsZero() {
		b.tokens += now.Sub(b.last).Seconds() * b.perSecond
		if b.tokens > b.burst {
			b.tokens = b.burst
		}
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

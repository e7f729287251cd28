package wireguard

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/device"
)

// Events wireguard-go reports through its logger, counted by weft. The
// library has no counters of its own for them; its log format strings are
// the events (matched exactly, never parsed).
const (
	EventInitiationReceived = "handshake_initiation_received"
	EventInitiationSent     = "handshake_initiation_sent"
	EventResponseReceived   = "handshake_response_received" // a handshake this node began completed
	EventResponseSent       = "handshake_response_sent"     // a handshake a peer began completed
	EventInvalidInitiation  = "invalid_handshake_initiation"
	EventInvalidResponse    = "invalid_handshake_response"
	EventInvalidMAC1        = "invalid_mac1"
	EventCookieSent         = "handshake_under_load_cookie_sent"
	EventDisallowedSource   = "disallowed_inner_source"
	EventUnknownType        = "unknown_message_type"
	EventHandshakeGaveUp    = "handshake_gave_up"
)

// eventFormats maps wireguard-go's format strings to the events.
var eventFormats = map[string]string{
	"%v - Received handshake initiation":                           EventInitiationReceived,
	"%v - Sending handshake initiation":                            EventInitiationSent,
	"%v - Received handshake response":                             EventResponseReceived,
	"%v - Sending handshake response":                              EventResponseSent,
	"Received invalid initiation message from %s":                  EventInvalidInitiation,
	"Failed to decode initiation message":                          EventInvalidInitiation,
	"Received invalid response message from %s":                    EventInvalidResponse,
	"Failed to decode response message":                            EventInvalidResponse,
	"Received packet with invalid mac1":                            EventInvalidMAC1,
	"Sending cookie response for denied handshake message for %v":  EventCookieSent,
	"IPv4 packet with disallowed source address from %v":           EventDisallowedSource,
	"IPv6 packet with disallowed source address from %v":           EventDisallowedSource,
	"Packet with invalid IP version from %v":                       EventDisallowedSource,
	"Received message with unknown type":                           EventUnknownType,
	"%s - Handshake did not complete after %d attempts, giving up": EventHandshakeGaveUp,
}

// EventNames lists the events in a fixed order (metrics, /status).
var EventNames = [...]string{
	EventInitiationReceived, EventInitiationSent, EventResponseReceived, EventResponseSent,
	EventInvalidInitiation, EventInvalidResponse, EventInvalidMAC1, EventCookieSent,
	EventDisallowedSource, EventUnknownType, EventHandshakeGaveUp,
}

// eventCounts counts the events; the counters only go up.
type eventCounts struct {
	n [len(EventNames)]atomic.Uint64
}

func (c *eventCounts) add(event string) {
	for i, name := range EventNames {
		if name == event {
			c.n[i].Add(1)
			return
		}
	}
}

// snapshot returns the counts by name.
func (c *eventCounts) snapshot() map[string]uint64 {
	out := make(map[string]uint64, len(EventNames))
	for i, name := range EventNames {
		out[name] = c.n[i].Load()
	}
	return out
}

// errorLogEvery bounds how often one error format of the library reaches
// weftd's log (a peer that cannot be reached fails every send).
const errorLogEvery = 5 * time.Second

// newDeviceLogger adapts wireguard-go's logger: verbose lines are counted as
// events (and logged at debug level), errors logged at warning level, each
// format at most once per errorLogEvery.
func newDeviceLogger(log *slog.Logger, counts *eventCounts) *device.Logger {
	var mu sync.Mutex
	last := map[string]time.Time{}
	debug := log.Enabled(context.Background(), slog.LevelDebug)
	return &device.Logger{
		Verbosef: func(format string, args ...any) {
			if ev, ok := eventFormats[format]; ok {
				counts.add(ev)
			}
			if debug {
				log.Debug(fmt.Sprintf(format, args...))
			}
		},
		Errorf: func(format string, args ...any) {
			if ev, ok := eventFormats[format]; ok {
				counts.add(ev)
			}
			mu.Lock()
			now := time.Now()
			if t, ok := last[format]; ok && now.Sub(t) < errorLogEvery {
				mu.Unlock()
				return
			}
			if len(last) > 256 {
				clear(last)
			}
			last[format] = now
			mu.Unlock()
			log.Warn(fmt.Sprintf(format, args...))
		},
	}
}

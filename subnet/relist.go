package subnet

import (
	"context"
	"time"
)

// relist runs listAndWatch until ctx ends. After each interruption it logs
// "<what> interrupted, listing again" and waits before the next listing:
// minRetryDelay, doubling up to maxRetryDelay, back to minRetryDelay once a
// watch made progress. WatchLeases and WatchView share it.
func (m *Manager) relist(ctx context.Context, what string, listAndWatch func(context.Context) (progressed bool, err error)) {
	delay := minRetryDelay
	for ctx.Err() == nil {
		progressed, err := listAndWatch(ctx)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			delay = minRetryDelay
		}
		m.log.Warn(what+" interrupted, listing again", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
		case <-time.After(delay):
		}
		delay = min(delay*2, maxRetryDelay)
	}
}

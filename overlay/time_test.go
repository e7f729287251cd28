package overlay

import "time"

var testEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testTime(ms int) time.Time { return testEpoch.Add(time.Duration(ms) * time.Millisecond) }

package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"sort"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// slogCore is a zapcore.Core that writes etcd's zap entries to a
// slog.Logger, so the embedded etcd's lines come out in weftd's format
// (text or JSON, with journal priorities) instead of as zap JSON beside
// them. Stack traces are dropped. Once stopping is done, errors and
// warnings are logged at debug: closing a server makes etcd report its
// own listeners' "server closed" as errors.
type slogCore struct {
	log      *slog.Logger
	min      zapcore.Level
	stopping context.Context
	attrs    []slog.Attr
}

func newSlogZap(log *slog.Logger, min zapcore.Level, stopping context.Context) *zap.Logger {
	return zap.New(&slogCore{log: log, min: min, stopping: stopping})
}

func (c *slogCore) level(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.WarnLevel && c.stopping.Err() != nil:
		return slog.LevelDebug
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}

func (c *slogCore) Enabled(l zapcore.Level) bool {
	return l >= c.min && c.log.Enabled(context.Background(), c.level(l))
}

func (c *slogCore) With(fields []zapcore.Field) zapcore.Core {
	d := *c
	d.attrs = append(append([]slog.Attr(nil), c.attrs...), attrsOf(fields)...)
	return &d
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	attrs := append(append([]slog.Attr(nil), c.attrs...), attrsOf(fields)...)
	if e.LoggerName != "" {
		attrs = append(attrs, slog.String("logger", e.LoggerName))
	}
	c.log.LogAttrs(context.Background(), c.level(e.Level), e.Message, attrs...)
	return nil
}

func (c *slogCore) Sync() error { return nil }

// attrsOf turns zap fields into slog attributes through zap's own map
// encoder (which knows every field type).
func attrsOf(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	attrs := make([]slog.Attr, 0, len(keys))
	for _, k := range keys {
		switch v := enc.Fields[k].(type) {
		case string, bool, int64, uint64, float64, int, uint32, int32:
			attrs = append(attrs, slog.Any(k, v))
		default:
			attrs = append(attrs, slog.String(k, fmt.Sprint(v)))
		}
	}
	return attrs
}

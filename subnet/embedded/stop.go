package embedded

import (
	"context"
	"fmt"
	"log/slog"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
)

// routeEtcdLogs sends the member's zap entries at cfg.LogLevel and above
// to log (see slogCore).
func routeEtcdLogs(cfg *embed.Config, log *slog.Logger, stopping context.Context) error {
	min, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return fmt.Errorf("etcd log level %q: %w", cfg.LogLevel, err)
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(newSlogZap(log, min, stopping))
	return nil
}

// endStreamsOnStop makes every gRPC stream's context end when stopping
// does. etcd.Close stops its gRPC server gracefully, which waits for open
// streams, and a watch stream ends only when its client ends it: with
// other nodes watching, every stop took etcd's request timeout (5 s + two
// election timeouts = 7 s) before the server cut the streams. A watch
// handler returns as soon as its stream's context is done.
func endStreamsOnStop(cfg *embed.Config, stopping context.Context) {
	cfg.GRPCAdditionalServerOptions = append(cfg.GRPCAdditionalServerOptions,
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			ctx, cancel := context.WithCancel(ss.Context())
			defer cancel()
			unhook := context.AfterFunc(stopping, cancel)
			defer unhook()
			return handler(srv, stoppableStream{ServerStream: ss, ctx: ctx})
		}))
}

// stoppableStream is a server stream with a context that also ends on stop.
type stoppableStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s stoppableStream) Context() context.Context { return s.ctx }

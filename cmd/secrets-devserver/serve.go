package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/secrets-agent/secrets-agent/controlplane/devserver"
)

type serveOptions struct {
	dir       string
	listen    string
	keepalive time.Duration
	logLevel  string
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve --data DIR [--listen 127.0.0.1:7878]",
		Short: "Run the control plane on a data directory until SIGINT or SIGTERM",
		Long: `serve runs the control plane in the foreground.

On first start it creates DIR (0700) and in it, each 0600: the database
(devserver.db), the key that seals secret values (key) and the admin token
(admin-token). Once listening it writes the address it listens on to
DIR/address (0600): with --listen 127.0.0.1:0 that is the port the system
picked. On SIGINT or SIGTERM it removes DIR/address, ends every watch stream,
finishes the calls in flight and exits 0. One serve holds a data directory
at a time: a second one fails after a second.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return serve(cmd.Context(), o) },
	}
	addDataFlag(cmd, &o.dir)
	cmd.Flags().StringVar(&o.listen, "listen", "127.0.0.1:7878", "host:port to listen on (port 0 picks a free one)")
	cmd.Flags().DurationVar(&o.keepalive, "keepalive", 0, "interval of keepalive lines on watch streams; 0 sends none (Ona promises none)")
	cmd.Flags().StringVar(&o.logLevel, "log-level", "info", "debug | info | warn | error (logs go to stderr as JSON, times in ISO 8601 as the agent's)")
	return cmd
}

// serve runs the server until a signal, step by step:
//
//  1. open the data dir (store, key, admin token);
//  2. listen, then record the address in DIR/address;
//  3. serve until SIGINT/SIGTERM or a serve error;
//  4. remove DIR/address, so no new client finds a server that is going,
//     then end the watch streams and finish the calls in flight.
func serve(ctx context.Context, o serveOptions) (err error) {
	lvl, err := zap.ParseAtomicLevel(o.logLevel)
	if err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = lvl
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder // as the agent logs
	log, err := cfg.Build()
	if err != nil {
		return fmt.Errorf("logger: %w", err)
	}
	defer func() { _ = log.Sync() }()

	// (1)
	srv, err := devserver.New(devserver.Options{Dir: o.dir, Keepalive: o.keepalive, Logger: log})
	if err != nil {
		return err
	}
	// (2)
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		_ = srv.Shutdown(context.Background())
		return fmt.Errorf("listen on %s: %w", o.listen, err)
	}
	addr := ln.Addr().String()
	if err := devserver.WriteAddress(o.dir, addr); err != nil {
		ln.Close()
		_ = srv.Shutdown(context.Background())
		return err
	}
	log.Info("listening", zap.String("url", "http://"+addr), zap.String("data", o.dir))

	// (3)
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case serveErr = <-served:
	}

	// (4)
	rmErr := devserver.RemoveAddress(o.dir)
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shutErr := srv.Shutdown(sctx)
	if serveErr == nil {
		serveErr = <-served
	}
	return errors.Join(serveErr, rmErr, shutErr)
}

package main

import (
	"fmt"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"

	"github.com/secrets-agent/secrets-agent/config"
)

// newLogger builds the daemon's logger from cfg: level debug, info, warn or
// error; format json, console, or auto (console when out is a terminal,
// JSON otherwise, as under systemd or in a container log). It writes to out.
func newLogger(cfg config.Log, out *os.File) (*zap.Logger, error) {
	var level zapcore.Level
	if err := level.UnmarshalText([]byte(cfg.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	format := cfg.Format
	if format == "" || format == "auto" {
		format = "json"
		if isTerminal(out) {
			format = "console"
		}
	}
	var enc zapcore.Encoder
	switch format {
	case "json":
		ec := zap.NewProductionEncoderConfig()
		ec.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, fmt.Errorf("log.format: %q is not auto, json or console", cfg.Format)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(out), level)
	return zap.New(core, zap.ErrorOutput(zapcore.Lock(out))), nil
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

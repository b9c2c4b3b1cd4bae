package main

import "errors"

// exitCoder is an error that carries the process's exit code. An empty
// message prints nothing (the command already said what it had to).
type exitCoder interface {
	error
	ExitCode() int
}

type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
func (e *exitError) ExitCode() int { return e.code }

// exitWith returns an error that makes main exit with code after printing msg
// (nothing when msg is empty).
func exitWith(code int, msg string) error { return &exitError{code: code, msg: msg} }

func asExitCoder(err error, target *exitCoder) bool { return errors.As(err, target) }

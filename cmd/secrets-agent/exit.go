package main

// exitError is an error that carries the process's exit code. An empty
// message prints nothing (the command already said what it had to).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// exitWith returns an error that makes main exit with code after printing msg
// (nothing when msg is empty).
func exitWith(code int, msg string) error { return &exitError{code: code, msg: msg} }

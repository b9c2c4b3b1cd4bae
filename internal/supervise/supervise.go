// Package supervise runs a program with the environment's variables and keeps
// it in step with them: the engine of `secrets-agent exec`. It starts the
// program with the caller's environment overlaid with the managed variables,
// forwards signals to it, watches the variables it passed, and on a change
// restarts it or sends it a signal, once per change.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Mode is what a change of a passed variable does to the program.
type Mode string

// The modes.
const (
	Restart Mode = "restart" // SIGTERM, a grace period, SIGKILL, start again
	Signal  Mode = "signal"  // send OnChange.Signal; the program keeps its environment
	None    Mode = "none"    // nothing: the variables are not watched
)

// OnChange is the --on-change setting.
type OnChange struct {
	Mode   Mode
	Signal syscall.Signal // Mode Signal only
}

// ParseOnChange reads "restart", "none" or "signal:NAME" (NAME as HUP,
// SIGHUP or a number).
func ParseOnChange(s string) (OnChange, error) {
	switch s {
	case string(Restart):
		return OnChange{Mode: Restart}, nil
	case string(None):
		return OnChange{Mode: None}, nil
	}
	name, ok := strings.CutPrefix(s, "signal:")
	if !ok {
		return OnChange{}, fmt.Errorf("%q: want restart, none or signal:NAME", s)
	}
	sig, err := ParseSignal(name)
	if err != nil {
		return OnChange{}, err
	}
	return OnChange{Mode: Signal, Signal: sig}, nil
}

// ParseSignal reads a signal name (HUP, SIGHUP, case-insensitive) or number.
func ParseSignal(name string) (syscall.Signal, error) {
	n := strings.ToUpper(name)
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if sig := unix.SignalNum(n); sig != 0 {
		return sig, nil
	}
	var num int
	if _, err := fmt.Sscanf(name, "%d", &num); err == nil && num > 0 && unix.SignalName(syscall.Signal(num)) != "" {
		return syscall.Signal(num), nil
	}
	return 0, fmt.Errorf("signal %q: unknown", name)
}

// Options configure Run.
type Options struct {
	// Argv is the program and its arguments.
	Argv []string
	// Base is the caller's environment ("NAME=value"), overlaid with the
	// managed variables the program is given.
	Base []string
	// Only, when set, limits the managed variables given (and watched) to
	// these names; nil gives every managed variable.
	Only []string
	// Fetch returns the managed variables now. Its first error ends Run
	// before the program starts; later errors keep the program running with
	// what it has.
	Fetch    func(ctx context.Context) (map[string]string, error)
	OnChange OnChange
	// Interval is how often the variables are fetched; 0 means one second.
	// A change acts once two fetches in a row agree on it, so a burst of
	// changes coalesces into one restart.
	Interval time.Duration
	// Grace is how long a restart waits after SIGTERM before SIGKILL; 0
	// means 10 seconds.
	Grace time.Duration
	// Stdin, Stdout and Stderr are the program's; nil means ours.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Notes receives one line per thing the supervisor did (a restart, a
	// signal sent, the agent gone); nil means os.Stderr. Never a value.
	Notes io.Writer
}

// Exit codes of Run's own failures, as env(1) and timeout(1) have them.
const (
	ExitFailed     = 125 // the supervisor failed before the program started
	ExitNotRunable = 126 // the program was found but could not be run
	ExitNotFound   = 127 // the program was not found
)

// StartError is Run's error when the program could not be started; Code is
// the exit code to use.
type StartError struct {
	Code int
	Err  error
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// Run starts the program and supervises it until it exits, and returns the
// exit code to exit with: the program's own, or 128+n when a signal n ended
// it. The steps:
//
//  1. Fetch the variables; an error ends Run (the program never starts).
//  2. Start the program with Base overlaid by the variables (only Only's,
//     when set). On a terminal it stays in our process group, so it reads the
//     terminal and job control (Ctrl-Z, fg) works as for any foreground
//     program; otherwise it gets a process group of its own, so that a
//     restart reaches its children too.
//  3. Forward every signal we receive to it (to its group when it has one),
//     except, on a terminal, SIGINT, SIGQUIT, SIGTSTP and SIGWINCH: the
//     terminal sends those to the whole foreground group, the program
//     included, so forwarding them would deliver them twice.
//  4. Every Interval fetch the variables. Compare the watched names (Only,
//     or those the program was given): a difference from what the program
//     has is pending until a fetch agrees with the one before it; then it
//     acts once: Restart stops the program (SIGTERM, Grace, SIGKILL) and
//     goes back to 2 with the new variables; Signal sends the signal and the
//     new values become the reference. A change of other names does
//     nothing. A failed fetch (the agent went away) changes nothing: the
//     program keeps running with what it has, and a note says so once.
//  5. When the program exits, except in a restart, return its exit code.
func Run(ctx context.Context, o Options) (int, error) {
	if len(o.Argv) == 0 {
		return ExitFailed, errors.New("no program to run")
	}
	o = o.withDefaults()
	// (1)
	vars, err := o.Fetch(ctx)
	if err != nil {
		return ExitFailed, err
	}
	s := &supervisor{o: o, tty: onTerminal(o.Stdin)}
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwarded(s.tty)...)
	defer signal.Stop(sigs)

	// (2)
	if err := s.start(vars); err != nil {
		return err.Code, err
	}
	var tick <-chan time.Time
	if o.OnChange.Mode != None {
		t := time.NewTicker(o.Interval)
		defer t.Stop()
		tick = t.C
	}
	var (
		last     = vars // the previous fetch
		agentErr error  // the last fetch failed
		grace    <-chan time.Time
	)
	for {
		select {
		case sig := <-sigs:
			// (3)
			s.forward(sig.(syscall.Signal))
		case <-grace:
			grace = nil
			s.kill(syscall.SIGKILL)
		case st := <-s.exited:
			// (5)
			if !s.restarting {
				return exitCode(st), nil
			}
			grace = nil
			if err := s.start(last); err != nil {
				return err.Code, err
			}
			s.note("restarted %s", o.Argv[0])
		case <-tick:
			// (4)
			cur, err := o.Fetch(ctx)
			if err != nil {
				if agentErr == nil {
					s.note("variables not fetched (%v); %s keeps running with the ones it has", err, o.Argv[0])
				}
				agentErr = err
				continue
			}
			if agentErr != nil {
				s.note("variables fetched again")
				agentErr = nil
			}
			settled := !s.differs(cur, last)
			last = cur
			if !settled || !s.differs(cur, s.given) || s.restarting {
				continue
			}
			switch o.OnChange.Mode {
			case Restart:
				s.note("a variable %s was given changed: restarting it", o.Argv[0])
				s.restarting = true
				s.kill(syscall.SIGTERM)
				grace = time.After(o.Grace)
			case Signal:
				s.note("a variable %s was given changed: sending %s", o.Argv[0], unix.SignalName(o.OnChange.Signal))
				s.given = cur
				s.kill(o.OnChange.Signal)
			}
		}
	}
}

func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Grace <= 0 {
		o.Grace = 10 * time.Second
	}
	if o.Stdin == nil {
		o.Stdin = os.Stdin
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Notes == nil {
		o.Notes = os.Stderr
	}
	if o.OnChange.Mode == "" {
		o.OnChange.Mode = Restart
	}
	return o
}

// supervisor is the state of one Run; only Run's goroutine touches it.
type supervisor struct {
	o   Options
	tty bool
	// cmd is the program running now; exited gets its end.
	cmd    *exec.Cmd
	exited chan *os.ProcessState
	// given are the managed variables the program was given (or, after a
	// signal, last told about); watched are the names compared.
	given   map[string]string
	watched []string
	// restarting: the program was told to stop and starts again when it
	// has.
	restarting bool
}

// start runs the program with vars (step 2).
func (s *supervisor) start(vars map[string]string) *StartError {
	given := pick(vars, s.o.Only)
	cmd := exec.Command(s.o.Argv[0], s.o.Argv[1:]...)
	cmd.Env = overlay(s.o.Base, given)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s.o.Stdin, s.o.Stdout, s.o.Stderr
	// Should we be killed (SIGKILL cannot be forwarded), the program gets
	// SIGTERM rather than running on unsupervised.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: !s.tty, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		code := ExitNotRunable
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
			code = ExitNotFound
		}
		return &StartError{Code: code, Err: fmt.Errorf("start %s: %w", s.o.Argv[0], err)}
	}
	s.cmd, s.given, s.restarting = cmd, given, false
	if s.o.Only != nil {
		s.watched = s.o.Only
	} else {
		s.watched = slices.Sorted(maps.Keys(given))
	}
	exited := make(chan *os.ProcessState, 1)
	go func() {
		_ = cmd.Wait()
		exited <- cmd.ProcessState
	}()
	s.exited = exited
	return nil
}

// forwarded lists the signals Run catches to forward (step 3): every
// asynchronous one but those that are ours (SIGCHLD, the Go runtime's
// SIGURG, SIGPIPE), the faults, the terminal's job-control stops SIGTTIN and
// SIGTTOU, and on a terminal SIGTSTP, which must stop us with the program so
// that the shell sees the job stopped and fg resumes both.
func forwarded(tty bool) []os.Signal {
	var out []os.Signal
	for sig := syscall.Signal(1); sig <= syscall.SIGSYS; sig++ {
		switch sig {
		case syscall.SIGKILL, syscall.SIGSTOP, syscall.SIGCHLD, syscall.SIGURG, syscall.SIGPIPE,
			syscall.SIGSEGV, syscall.SIGBUS, syscall.SIGFPE, syscall.SIGILL, syscall.SIGTRAP, syscall.SIGSYS,
			syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGPROF:
			continue
		case syscall.SIGTSTP:
			if tty {
				continue
			}
		}
		out = append(out, sig)
	}
	return out
}

// forward passes sig on to the program (step 3). A signal that ends
// programs, received during a restart, cancels the restart: Run returns once
// the program has stopped.
func (s *supervisor) forward(sig syscall.Signal) {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT:
		s.restarting = false
	}
	switch sig {
	case syscall.SIGINT, syscall.SIGQUIT, syscall.SIGWINCH:
		if s.tty {
			return // the terminal sent it to the program too
		}
	}
	s.kill(sig)
}

// kill sends sig to the program: to its process group when it has one of
// its own.
func (s *supervisor) kill(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pid := s.cmd.Process.Pid
	if !s.tty {
		pid = -pid
	}
	_ = unix.Kill(pid, sig)
}

// differs reports whether a and b differ in a watched name (a value, or
// being set at all).
func (s *supervisor) differs(a, b map[string]string) bool {
	for _, n := range s.watched {
		va, oka := a[n]
		vb, okb := b[n]
		if oka != okb || va != vb {
			return true
		}
	}
	return false
}

func (s *supervisor) note(format string, args ...any) {
	fmt.Fprintf(s.o.Notes, "secrets-agent exec: "+format+"\n", args...)
}

// pick returns the variables of vars named in only (all when only is nil).
func pick(vars map[string]string, only []string) map[string]string {
	if only == nil {
		return maps.Clone(vars)
	}
	out := map[string]string{}
	for _, n := range only {
		if v, ok := vars[n]; ok {
			out[n] = v
		}
	}
	return out
}

// overlay returns base with every variable of vars set to its value (in
// place of base's, if any), vars' names sorted at the end.
func overlay(base []string, vars map[string]string) []string {
	out := make([]string, 0, len(base)+len(vars))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := vars[name]; !ok {
			out = append(out, kv)
		}
	}
	for _, n := range slices.Sorted(maps.Keys(vars)) {
		out = append(out, n+"="+vars[n])
	}
	return out
}

// exitCode is the code to exit with for a program that ended as st: its
// exit status, or 128+n for signal n.
func exitCode(st *os.ProcessState) int {
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// onTerminal reports whether in is a terminal.
func onTerminal(in io.Reader) bool {
	f, ok := in.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// Package unixsock binds a Unix socket that nobody but its owner can reach
// with a mode other than its final one, or takes over one that systemd's
// socket activation passed in.
package unixsock

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
)

// Adopt gives the file of an activated unix socket the owner and
// mode Bind would: uid (and gid with mode 0660 when gid >= 0, else
// 0600). An abstract or unnamed socket has no file and is left as it is.
func Adopt(ln net.Listener, uid, gid int) error {
	addr, ok := ln.Addr().(*net.UnixAddr)
	if !ok || addr.Name == "" || addr.Name[0] == '@' {
		return nil
	}
	mode := os.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
	}
	if err := os.Lchown(addr.Name, uid, gid); err != nil {
		return fmt.Errorf("chown activated socket %s: %w", addr.Name, err)
	}
	if err := os.Chmod(addr.Name, mode); err != nil {
		return fmt.Errorf("chmod activated socket %s: %w", addr.Name, err)
	}
	return nil
}

// Activated returns the first unix listener systemd passed in, or nil
// when there is none (not socket-activated).
func Activated() (net.Listener, error) {
	lns, err := activation.Listeners()
	if err != nil {
		return nil, err
	}
	var found net.Listener
	for _, l := range lns {
		if l == nil {
			continue
		}
		if found == nil && l.Addr().Network() == "unix" {
			found = l
			continue
		}
		_ = l.Close() // not ours to serve
	}
	return found, nil
}

// Bind binds a unix socket at path that nobody but us can ever reach
// with a mode other than its final one, and returns its listener and a
// function that removes the socket file if it is still the one we bound.
//
// Steps:
//  1. Refuse a path that exists and is not a socket (a file, a symlink, a
//     directory): it is not ours to replace.
//  2. If a socket is there, dial it: an answer means a live server (error);
//     "connection refused" means a crash left it behind (replaced in 5).
//  3. Create the parent directory when missing: 0700 when only the agent's own
//     user connects, 0755 when another user or a group must reach the socket
//     (the socket's own mode then guards it).
//  4. Bind inside a fresh 0700 temp directory beside the target, then chmod
//     (0600, or 0660 with a group) and chown (to the environment's user and
//     the group) while nobody else can reach it. We do not narrow the umask
//     around bind instead: umask is per process, and changing it would race
//     with every other goroutine creating files at the same time.
//  5. Rename the socket onto path (atomic; replaces a stale socket), and
//     remove the temp directory.
//
// Two agents starting at the same instant on one path are not detected; the
// later rename wins.
func Bind(path string, envUID, gid int) (net.Listener, func(), error) {
	if path == "" {
		return nil, nil, errors.New("no socket path configured")
	}
	if err := claimable(path); err != nil { // (1), (2)
		return nil, nil, err
	}

	// (3)
	shared := envUID != os.Getuid() || gid >= 0
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		mode := os.FileMode(0o700)
		if shared {
			mode = 0o755
		}
		if err := os.MkdirAll(dir, mode); err != nil {
			return nil, nil, fmt.Errorf("create %s: %w", dir, err)
		}
		if err := os.Chmod(dir, mode); err != nil { // the umask may have narrowed it
			return nil, nil, fmt.Errorf("chmod %s: %w", dir, err)
		}
	}

	// (4)
	tmpDir, err := os.MkdirTemp(dir, ".sa")
	if err != nil {
		return nil, nil, fmt.Errorf("create temp dir for %s: %w", path, err)
	}
	defer os.RemoveAll(tmpDir)
	tmp := filepath.Join(tmpDir, "s")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, nil, fmt.Errorf("bind %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false) // the file moves; remove deletes it by its final name
	fail := func(err error) (net.Listener, func(), error) {
		_ = ln.Close()
		return nil, nil, err
	}
	mode := os.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(fmt.Errorf("chmod socket %s: %w", path, err))
	}
	uid := envUID
	if uid == os.Getuid() {
		uid = -1
	}
	if uid >= 0 || gid >= 0 {
		if err := os.Chown(tmp, uid, gid); err != nil {
			return fail(fmt.Errorf("chown socket %s: %w", path, err))
		}
	}
	// (5)
	if err := os.Rename(tmp, path); err != nil {
		return fail(fmt.Errorf("move socket into place at %s: %w", path, err))
	}
	bound, err := os.Lstat(path)
	if err != nil {
		return fail(fmt.Errorf("stat socket %s: %w", path, err))
	}
	remove := func() {
		if now, err := os.Lstat(path); err == nil && os.SameFile(now, bound) {
			_ = os.Remove(path)
		}
	}
	return ln, remove, nil
}

// claimable returns nil when a socket may be bound at path: nothing is
// there, or a socket nobody answers on (a crash left it behind). It refuses
// anything that is not a socket, and a socket a live server answers on.
func claimable(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("%s exists and is not a socket; not replacing it", path)
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err == nil {
		_ = c.Close()
		return fmt.Errorf("another secrets-agent is serving %s", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("check existing socket %s: %w", path, err)
	}
	return nil
}

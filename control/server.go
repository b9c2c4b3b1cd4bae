package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/secrets-agent/secrets-agent/config"
	"github.com/secrets-agent/secrets-agent/internal/unixsock"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// The status socket's routes. Only /v1/env and the two credential routes
// return a secret value, and only to an allowed peer (root or the
// environment's user), who can read the env fragment file and the registry
// secret anyway, and is the one git runs as.
const (
	routeStatus         = "/v1/status"
	routeSync           = "/v1/sync"
	routeWait           = "/v1/wait"
	routeEnv            = "/v1/env"
	routeCredentials    = "/v1/docker/credentials"
	routeHosts          = "/v1/docker/hosts"
	routeGitCredentials = "/v1/git/credentials"
)

// waitDefault and waitMax bound GET /v1/wait's timeout parameter.
const (
	waitDefault = 30 * time.Second
	waitMax     = time.Hour
)

// Credential is the body of GET /v1/docker/credentials and GET
// /v1/git/credentials: the field names are those of the
// docker-credential-helpers protocol.
type Credential struct {
	Username string
	Secret   string
}

// errorBody is the JSON body of every non-2xx answer.
type errorBody struct {
	Error string `json:"error"`
}

// Serve serves b on the status socket cfg.Socket until stop is called
// or ctx is done; stop waits until every request has been answered (a
// pending GET /v1/wait is ended at once), removes the socket
// file the server created (never one systemd passed in) and is safe to call
// more than once.
//
// Where the listener comes from:
//  1. A unix listener passed by systemd socket activation is used, and its
//     file is given the owner and mode a bound socket would have (the
//     environment's user, 0600; or 0660 with cfg.SocketGroup), so that the
//     user's clients can connect without a drop-in for the .socket unit.
//  2. Otherwise the socket is bound at cfg.Socket, as unixsock.Bind describes:
//     an existing socket with a live server behind it is an error ("another
//     secrets-agent is serving <path>"); one nobody answers on (left by a
//     crash) is replaced.
//
// Every connection's peer uid is read with SO_PEERCRED. Root and the
// environment's user (cfg.User, or the agent's own user when empty) are
// served; any other peer gets 403 and its connection closed, and the refusal
// is logged with its uid and pid.
func Serve(ctx context.Context, b Backend, cfg *config.Config, log *zap.Logger) (stop func(), err error) {
	envUID, err := config.UserID(cfg.User)
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	gid := -1
	if cfg.SocketGroup != "" {
		if gid, err = config.GroupID(cfg.SocketGroup); err != nil {
			return nil, fmt.Errorf("status socket: socket_group: %w", err)
		}
	}

	ln, err := unixsock.Activated()
	if err != nil {
		return nil, fmt.Errorf("status socket: socket activation: %w", err)
	}
	var remove func()
	if ln != nil {
		log.Info("status socket passed in by systemd", zap.String("addr", ln.Addr().String()))
		if err := unixsock.Adopt(ln, envUID, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("status socket: %w", err)
		}
	} else {
		ln, remove, err = unixsock.Bind(cfg.Socket, envUID, gid)
		if err != nil {
			return nil, fmt.Errorf("status socket: %w", err)
		}
		log.Info("status socket listening", zap.String("path", cfg.Socket))
	}

	s := &socketServer{b: b, log: log, allowed: map[uint32]bool{0: true, uint32(envUID): true}}
	base, cancel := context.WithCancel(ctx)
	srv := &http.Server{
		Handler:           s.guard(s.routes()),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		BaseContext:       func(net.Listener) context.Context { return base },
		ConnContext:       withPeer,
		ErrorLog:          zap.NewStdLog(log),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("status socket stopped", zap.Error(err))
		}
	}()
	shutDown := make(chan struct{})
	go func() {
		defer close(shutDown)
		<-base.Done()
		// Requests share base, so a long GET /v1/wait ends at once and
		// Shutdown only waits for answers being written.
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			<-done     // Serve returned: no new connections
			<-shutDown // and every handler has returned
			if remove != nil {
				remove()
			}
		})
	}, nil
}

// peer is who is on the other end of a connection, as SO_PEERCRED told.
type peer struct {
	cred *unix.Ucred
	err  error
}

type peerKey struct{}

// withPeer records the connection's peer credentials in its context.
func withPeer(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, peerKey{}, peerOf(c))
}

func peerOf(c net.Conn) peer {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return peer{err: fmt.Errorf("not a unix socket connection (%T)", c)}
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return peer{err: err}
	}
	var p peer
	if err := raw.Control(func(fd uintptr) {
		p.cred, p.err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return peer{err: err}
	}
	return p
}

// socketServer answers the status socket's routes from a Backend.
type socketServer struct {
	b       Backend
	log     *zap.Logger
	allowed map[uint32]bool
}

// guard serves only allowed peers; any other gets 403, its connection closed,
// and a log line with its uid.
func (s *socketServer) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := r.Context().Value(peerKey{}).(peer)
		if p.cred == nil || !s.allowed[p.cred.Uid] {
			fields := []zap.Field{zap.String("path", r.URL.Path)}
			msg := "peer credentials unknown"
			if p.cred != nil {
				fields = append(fields, zap.Uint32("uid", p.cred.Uid), zap.Int32("pid", p.cred.Pid))
				msg = fmt.Sprintf("uid %d may not use this socket", p.cred.Uid)
			} else if p.err != nil {
				fields = append(fields, zap.Error(p.err))
			}
			s.log.Warn("status socket: refused a peer", fields...)
			w.Header().Set("Connection", "close")
			writeError(w, http.StatusForbidden, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *socketServer) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+routeStatus, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.b.Status())
	})
	mux.HandleFunc("POST "+routeSync, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, s.b.Sync(r.Context()))
	})
	mux.HandleFunc("GET "+routeWait, s.wait)
	mux.HandleFunc("GET "+routeEnv, s.env)
	mux.HandleFunc("GET "+routeCredentials, s.credential(s.b.RegistryCredential, secrets.RegistryKey))
	mux.HandleFunc("GET "+routeGitCredentials, s.credential(func(host string) (string, string, bool) {
		return s.b.Credential(secrets.MountGitCredential, host)
	}, secrets.GitHostKey))
	mux.HandleFunc("GET "+routeHosts, func(w http.ResponseWriter, r *http.Request) {
		hosts := s.b.RegistryHosts()
		if hosts == nil {
			hosts = []string{}
		}
		writeJSON(w, hosts)
	})
	return mux
}

// wait answers 200 once the first pass has been applied, 504 when the
// timeout parameter (default 30s, at most 1h) passes first.
func (s *socketServer) wait(w http.ResponseWriter, r *http.Request) {
	timeout := waitDefault
	if v := r.URL.Query().Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > waitMax {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("timeout %q: want a duration between 0s and %s", v, waitMax))
			return
		}
		timeout = d
	}
	select {
	case <-s.b.Applied(): // applied already: answer even with timeout 0
		writeJSON(w, map[string]bool{"applied": true})
		return
	default:
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.b.Applied():
		writeJSON(w, map[string]bool{"applied": true})
	case <-t.C:
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("the first pass was not applied within %s", timeout))
	case <-r.Context().Done():
		writeError(w, http.StatusServiceUnavailable, "the agent is stopping")
	}
}

// env answers the current shell fragment. It holds values: the peer is root
// or the user who owns the fragment file anyway.
func (s *socketServer) env(w http.ResponseWriter, r *http.Request) {
	formats := s.b.EnvFormats()
	if len(formats) == 0 {
		writeError(w, http.StatusNotFound, "this agent renders no env fragment")
		return
	}
	format := r.URL.Query().Get("format")
	if format == "" {
		format = formats[0]
	}
	if !slices.Contains(formats, format) {
		last := len(formats) - 1
		writeError(w, http.StatusBadRequest, fmt.Sprintf("format %q: want %s", format,
			strings.TrimPrefix(strings.Join(formats[:last], ", ")+" or "+formats[last], " or ")))
		return
	}
	frag, err := s.b.EnvFragment(format)
	if err != nil {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("render %s fragment: %v", format, err))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(frag)
}

// credential returns the handler of a credential route: it answers the user
// and password lookup finds for the host parameter, after key has put the
// host in the form lookup compares (docker: secrets.RegistryKey, for a URL or
// Docker Hub's aliases; git: secrets.GitHostKey). 404 when the agent serves no
// such host.
func (s *socketServer) credential(lookup func(host string) (user, password string, ok bool), key func(string) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		host := r.URL.Query().Get("host")
		if host == "" {
			writeError(w, http.StatusBadRequest, "missing host parameter")
			return
		}
		u, p, ok := lookup(key(host))
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("no credentials for %s", key(host)))
			return
		}
		writeJSON(w, Credential{Username: u, Secret: p})
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(errorBody{Error: msg})
}

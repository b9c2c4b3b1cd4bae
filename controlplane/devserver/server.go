// Package devserver is the reference control plane: it keeps organization,
// project and user secrets and the environments that see them in one bbolt
// file, values sealed with AES-256-GCM, and serves the three environment
// calls of docs/ARCHITECTURE.md ("The control-plane contract") plus the admin
// calls a platform has, as Connect JSON over HTTP, under Ona's names.
package devserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// OpKeepalive is the operation of the keepalive line a watch stream sends
// every Options.Keepalive when that is set. It reports no change: a client
// re-reads nothing on it. Ona promises no such line, so by default none is
// sent and clients are tested against silent streams.
const OpKeepalive = controlplane.OpUnspecified

// APIPrefix is the path below which the API is served as well as at the
// root: Ona's base URLs (and the agent's default) end in /api.
const APIPrefix = "/api"

// SourceControlPlane is the source of every secret in a devserver
// environment's spec, as Ona names secrets kept by its control plane; the
// sourceRef is the secret's id.
const SourceControlPlane = "control-plane"

// maxRequestBody caps a request body: a value of the 1 MiB limit, base64'd,
// fits with room to spare.
const maxRequestBody = 4 << 20

// writeTimeout bounds the write of one response or one watch line.
const writeTimeout = 30 * time.Second

// Options configure a Server.
type Options struct {
	// Dir is the data directory (created 0700 when missing).
	Dir string
	// Keepalive is the interval of keepalive lines on watch streams; 0 (the
	// default) sends none, as Ona promises none.
	Keepalive time.Duration
	// Logger receives one line per change and per failed call, never a
	// value or token; nil logs nothing.
	Logger *zap.Logger
}

// Server is the devserver: an http.Handler over a Store. Serve it with Serve
// and stop it with Shutdown, or mount it in another http.Server and call
// Shutdown to end its watch streams and close the store.
type Server struct {
	store     *Store
	hub       *hub
	adminTok  string
	keepalive time.Duration
	log       *zap.Logger
	mux       *http.ServeMux
	http      *http.Server
	done      chan struct{} // closed by Shutdown: watch streams end
	stopOnce  sync.Once

	// views caches what each environment sees (views.go).
	views views
}

// New opens the data directory (store, key file, admin token; each created
// on first start) and returns a server ready to Serve.
func New(opts Options) (*Server, error) {
	store, err := OpenStore(opts.Dir)
	if err != nil {
		return nil, err
	}
	root, err := openDataDir(opts.Dir)
	if err != nil {
		store.Close()
		return nil, err
	}
	admin, err := loadAdminToken(root)
	root.Close()
	if err != nil {
		store.Close()
		return nil, err
	}
	s := &Server{store: store, hub: newHub(), adminTok: admin, keepalive: opts.Keepalive, log: opts.Logger, done: make(chan struct{})}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	s.mux = http.NewServeMux()
	for _, base := range []string{"", APIPrefix} {
		s.mux.HandleFunc("POST "+base+controlplane.ProcGetEnvironment, s.getEnvironment)
		s.mux.HandleFunc("POST "+base+controlplane.ProcGetSecretValue, s.getSecretValue)
		s.mux.HandleFunc("POST "+base+controlplane.ProcWatchEvents, s.watchEvents)
		s.mux.HandleFunc("POST "+base+ProcCreateSecret, s.createSecret)
		s.mux.HandleFunc("POST "+base+ProcListSecrets, s.listSecrets)
		s.mux.HandleFunc("POST "+base+ProcUpdateSecretValue, s.updateSecretValue)
		s.mux.HandleFunc("POST "+base+ProcDeleteSecret, s.deleteSecret)
		s.mux.HandleFunc("POST "+base+ProcCreateEnvironment, s.createEnvironment)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, errorf(controlplane.CodeUnimplemented, "%s %s: no such procedure (calls are POST {base}/{service}/{method})", r.Method, r.URL.Path))
	})
	s.http = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Store returns the server's store.
func (s *Server) Store() *Store { return s.store }

// ServeHTTP answers one call.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Serve answers calls on ln until Shutdown; it then returns nil.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown ends every watch stream, waits for the calls in flight (until ctx
// ends), stops Serve and closes the store. Calling it again does nothing.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		close(s.done)
		err = s.http.Shutdown(ctx)
		if cerr := s.store.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// errorf returns a Connect error to answer with. The message must never hold
// a value or a token.
func errorf(code controlplane.Code, format string, args ...any) error {
	return &controlplane.Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// asConnect maps an error of a handler or the store to the Connect error the
// caller sees: validation errors are invalid_argument naming the field,
// ErrNotFound and ErrExists their codes, anything else internal (the caller
// is told no more; the log has it).
func asConnect(err error) *controlplane.Error {
	var ce *controlplane.Error
	if errors.As(err, &ce) {
		return ce
	}
	var se *secrets.Error
	switch {
	case errors.As(err, &se):
		return &controlplane.Error{Code: controlplane.CodeInvalidArgument, Message: se.Error()}
	case errors.Is(err, ErrNotFound):
		return &controlplane.Error{Code: controlplane.CodeNotFound, Message: err.Error()}
	case errors.Is(err, ErrExists):
		return &controlplane.Error{Code: controlplane.CodeAlreadyExists, Message: err.Error()}
	}
	return &controlplane.Error{Code: controlplane.CodeInternal, Message: "internal error", Err: err}
}

func writeError(w http.ResponseWriter, err error) {
	ce := asConnect(err)
	w.Header().Set("Content-Type", controlplane.ContentTypeJSON)
	w.WriteHeader(ce.Code.HTTPStatus())
	_ = json.NewEncoder(w).Encode(controlplane.ErrorBody{Code: string(ce.Code), Message: ce.Message})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", controlplane.ContentTypeJSON)
	_ = json.NewEncoder(w).Encode(v)
}

// fail answers err and logs it (without the request body, which may hold a
// value).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	ce := asConnect(err)
	lvl := zap.DebugLevel
	if ce.Code == controlplane.CodeInternal {
		lvl = zap.ErrorLevel
	}
	s.log.Check(lvl, "call failed").Write(zap.String("procedure", r.URL.Path), zap.String("code", string(ce.Code)), zap.String("message", ce.Message), zap.Error(ce.Err))
	writeError(w, ce)
}

// decode reads a JSON request body into v. An empty body is the empty
// message; unknown fields are ignored, as Connect requires.
func decode(r *http.Request, w http.ResponseWriter, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != controlplane.ContentTypeJSON {
			return errorf(controlplane.CodeInvalidArgument, "Content-Type %q: want %s", ct, controlplane.ContentTypeJSON)
		}
	}
	err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody)).Decode(v)
	var mbe *http.MaxBytesError
	switch {
	case err == nil, errors.Is(err, io.EOF):
		return nil
	case errors.As(err, &mbe):
		return errorf(controlplane.CodeResourceExhausted, "request body is over %d bytes", maxRequestBody)
	}
	// json's errors quote at most a type and an offset, never the input.
	return errorf(controlplane.CodeInvalidArgument, "request body: %v", err)
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// environment returns the environment the caller's token belongs to; an
// unknown or missing token is unauthenticated.
func (s *Server) environment(r *http.Request) (Environment, error) {
	tok := bearer(r)
	if tok == "" {
		return Environment{}, errorf(controlplane.CodeUnauthenticated, "no bearer token")
	}
	env, err := s.store.EnvironmentByToken(tok)
	if errors.Is(err, ErrNotFound) {
		return Environment{}, errorf(controlplane.CodeUnauthenticated, "unknown token")
	}
	return env, err
}

// decodeOwn decodes the request into req and returns the caller's
// environment, checked to be the one *id (a field of req) names. On failure
// it has answered the error and ok is false.
func (s *Server) decodeOwn(w http.ResponseWriter, r *http.Request, req any, id *string) (env Environment, ok bool) {
	err := decode(r, w, req)
	if err == nil {
		env, err = s.ownEnvironment(r, *id)
	}
	if err != nil {
		s.fail(w, r, err)
		return env, false
	}
	return env, true
}

// ownEnvironment is environment, and also checks that the call is about the
// caller's own environment id.
func (s *Server) ownEnvironment(r *http.Request, id string) (Environment, error) {
	env, err := s.environment(r)
	if err != nil {
		return env, err
	}
	if id == "" {
		return env, errorf(controlplane.CodeInvalidArgument, "environmentId: is empty")
	}
	if id != env.ID {
		return env, errorf(controlplane.CodePermissionDenied, "environmentId: the token is not for environment %s", id)
	}
	return env, nil
}

// visible returns the secrets env sees, ordered by scope (highest first) and
// name.
func (s *Server) visible(env Environment) ([]Record, error) {
	rs, err := s.store.Visible(env)
	if err != nil {
		return nil, err
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].Scope != rs[j].Scope {
			return rs[i].Scope > rs[j].Scope
		}
		if rs[i].Name != rs[j].Name {
			return rs[i].Name < rs[j].Name
		}
		return rs[i].ID < rs[j].ID
	})
	return rs, nil
}

// getEnvironment answers GetEnvironment with every secret visible to the
// environment, winners and shadowed ones alike: the agent resolves
// precedence itself and reports what each winner shadows.
func (s *Server) getEnvironment(w http.ResponseWriter, r *http.Request) {
	var req controlplane.GetEnvironmentRequest
	env, ok := s.decodeOwn(w, r, &req, &req.EnvironmentID)
	if !ok {
		return
	}
	v, err := s.view(env)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeSpec(w, envelope(env), v.spec)
}

// envelope is GetEnvironment's answer for env without its secrets.
func envelope(env Environment) controlplane.GetEnvironmentResponse {
	return controlplane.GetEnvironmentResponse{Environment: controlplane.Environment{
		ID: env.ID,
		Metadata: controlplane.EnvironmentMetadata{OrganizationID: env.OrganizationID, ProjectID: env.ProjectID,
			Creator: controlplane.Subject{ID: env.UserID, Principal: "PRINCIPAL_USER"}},
		Status: controlplane.EnvironmentStatus{Phase: "ENVIRONMENT_PHASE_RUNNING"},
	}}
}

// emptySpec is how json.Marshal writes a spec without secrets
// (EnvironmentSpec.Secrets is omitempty). Within an encoded response it can
// only be the spec: inside a JSON string every quote is escaped, and the
// only key "spec" is the environment's.
var emptySpec = []byte(`"spec":{}`)

// writeSpec answers resp, whose spec is empty, with the encoded secrets
// in its spec: the same bytes as writeJSON with those secrets in
// resp.Environment.Spec.Secrets, without encoding them again.
func writeSpec(w http.ResponseWriter, resp controlplane.GetEnvironmentResponse, spec [][]byte) {
	env, err := json.Marshal(resp)
	if err != nil {
		writeError(w, err)
		return
	}
	i := bytes.Index(env, emptySpec)
	if i < 0 || len(spec) == 0 {
		writeJSON(w, resp)
		return
	}
	head, tail := env[:i+len(emptySpec)-1], env[i+len(emptySpec)-1:] // split before the closing brace
	size := len(head) + len(`"secrets":[]`) + len(spec) - 1 + len(tail) + 1
	for _, s := range spec {
		size += len(s)
	}
	w.Header().Set("Content-Type", controlplane.ContentTypeJSON)
	w.Header().Set("Content-Length", strconv.Itoa(size))
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.Write(head)
	bw.WriteString(`"secrets":[`)
	for i, s := range spec {
		if i > 0 {
			bw.WriteByte(',')
		}
		bw.Write(s)
	}
	bw.WriteByte(']')
	bw.Write(tail)
	bw.WriteByte('\n')
	_ = bw.Flush()
}

// getSecretValue answers GetSecretValue for a secret the caller's
// environment applies: a winner of secrets.Resolve over its visible secrets,
// or an API-only secret it sees (those are never injected, so Resolve skips
// them, but reading them through the API is their purpose). A secret the
// environment sees but that is shadowed is permission_denied; any other id is
// not_found, whether or not it exists, so no environment learns of another's
// secrets.
func (s *Server) getSecretValue(w http.ResponseWriter, r *http.Request) {
	var req controlplane.GetSecretValueRequest
	if err := decode(r, w, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.secretValue(w, r, req.SecretID); err != nil {
		s.fail(w, r, err)
	}
}

func (s *Server) secretValue(w http.ResponseWriter, r *http.Request, id string) error {
	env, err := s.environment(r)
	if err != nil {
		return err
	}
	if id == "" {
		return errorf(controlplane.CodeInvalidArgument, "secretId: is empty")
	}
	v, err := s.view(env)
	if err != nil {
		return err
	}
	acc := v.access
	if winner, ok := acc.shadowedBy[id]; ok {
		return errorf(controlplane.CodePermissionDenied, "secret %s is shadowed by secret %s in environment %s", id, winner, env.ID)
	}
	if !acc.readable[id] {
		return errorf(controlplane.CodeNotFound, "secret %s is not in environment %s", id, env.ID)
	}
	_, value, err := s.store.SecretValue(id)
	if errors.Is(err, ErrNotFound) {
		return errorf(controlplane.CodeNotFound, "secret %s is not in environment %s", id, env.ID)
	}
	if err != nil {
		return err
	}
	var resp controlplane.GetSecretValueResponse
	resp.Value, resp.ValueBytes = controlplane.EncodeValue(value)
	writeJSON(w, resp)
	return nil
}

// watchEvents holds a stream of JSON lines open until the caller leaves or
// the server shuts down.
//
//  1. Check the token and that it is for the environment asked about.
//  2. Subscribe before answering, so a change made after the caller has
//     the response headers is never missed.
//  3. Answer 200 with Content-Type application/jsonl and flush.
//  4. On each (coalesced) change notice write an update event line; when
//     Options.Keepalive is set, on each tick write an OpKeepalive line;
//     flush after every line.
//  5. End on the caller's context, on Shutdown, or on a failed write (one
//     that takes longer than writeTimeout fails).
func (s *Server) watchEvents(w http.ResponseWriter, r *http.Request) {
	var req controlplane.WatchEventsRequest
	env, ok := s.decodeOwn(w, r, &req, &req.EnvironmentID) // (1)
	if !ok {
		return
	}
	// (2)
	notices, cancel := s.hub.subscribe(env.ID)
	defer cancel()
	// (3)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", controlplane.ContentTypeJSONL)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	enc := json.NewEncoder(w)
	send := func(op string) bool {
		// A watcher that stops reading would block this write forever and
		// hold up Shutdown: give each line a deadline (ignored where the
		// writer has none to set).
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if err := enc.Encode(controlplane.Event{Operation: op, ResourceType: controlplane.ResEnvironment, ResourceID: env.ID}); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	// (4)
	var tick <-chan time.Time // nil, so never ready, without keepalives
	if s.keepalive > 0 {
		t := time.NewTicker(s.keepalive)
		defer t.Stop()
		tick = t.C
	}
	for {
		var ok bool
		select {
		case <-notices:
			ok = send(controlplane.OpUpdate)
		case <-tick:
			ok = send(OpKeepalive)
		case <-r.Context().Done(): // (5)
			return
		case <-s.done:
			return
		}
		if !ok {
			return
		}
	}
}

// admin checks that the caller holds the admin token: a missing or unknown
// token is unauthenticated, an environment's token permission_denied.
func (s *Server) admin(r *http.Request) error {
	tok := bearer(r)
	if tok != "" && subtle.ConstantTimeCompare([]byte(tok), []byte(s.adminTok)) == 1 {
		return nil
	}
	if _, err := s.environment(r); err != nil {
		return err
	}
	return errorf(controlplane.CodePermissionDenied, "%s needs the admin token", r.URL.Path)
}

// changed brings the cached views of every environment that sees rec up to
// date (how says what changed) and pushes a watch event to each. When those
// environments cannot be found, every view is dropped.
func (s *Server) changed(rec Record, how change) {
	envs, err := s.store.EnvironmentsSeeing(rec)
	if err != nil {
		s.views.dropAll()
		s.log.Error("find environments to notify", zap.String("secret", rec.ID), zap.Error(err))
		return
	}
	s.views.update(envs, rec, how)
	s.hub.notify(envs)
}

// adminCall decodes the request into req after checking the admin token,
// runs do and answers its result.
func adminCall[Req any](s *Server, w http.ResponseWriter, r *http.Request, do func(Req) (any, error)) {
	var req Req
	err := s.admin(r)
	if err == nil {
		err = decode(r, w, &req)
	}
	var resp any
	if err == nil {
		resp, err = do(req)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, resp)
}

func (s *Server) createSecret(w http.ResponseWriter, r *http.Request) {
	adminCall(s, w, r, func(req CreateSecretRequest) (any, error) {
		scope, err := req.scope()
		if err != nil {
			return nil, err
		}
		rec, err := Secret{Name: req.Name, Scope: scope, SecretMount: req.SecretMount, Creator: Admin, CredentialProxy: req.CredentialProxy}.Record()
		if err != nil {
			return nil, err
		}
		value, err := decodeValue(req.Value, req.ValueBytes)
		if err != nil {
			return nil, err
		}
		rec, err = s.store.CreateSecret(rec, value)
		if err != nil {
			return nil, err
		}
		s.log.Info("secret created", zap.String("id", rec.ID), zap.String("name", rec.Name), zap.Stringer("scope", rec.Scope), zap.String("owner", rec.Owner), zap.Stringer("mount", rec.Mount))
		s.changed(rec, secretAdded)
		return CreateSecretResponse{Secret: AdminSecret(rec)}, nil
	})
}

// listSecrets answers one page of the secrets the filter keeps, in a stable
// order (scope, owner, name, id). The page token is the position after the
// last secret sent, opaque to the caller; a token that does not decode is
// invalid_argument.
func (s *Server) listSecrets(w http.ResponseWriter, r *http.Request) {
	adminCall(s, w, r, func(req ListSecretsRequest) (any, error) {
		keep, err := req.Filter.keep()
		if err != nil {
			return nil, err
		}
		size := req.Pagination.PageSize
		switch {
		case size < 0:
			return nil, errorf(controlplane.CodeInvalidArgument, "pagination.pageSize: must not be negative")
		case size == 0:
			size = DefaultPageSize
		case size > MaxPageSize:
			size = MaxPageSize
		}
		from, err := decodePageToken(req.Pagination.Token)
		if err != nil {
			return nil, err
		}
		rs, err := s.store.Secrets(keep)
		if err != nil {
			return nil, err
		}
		sort.Slice(rs, func(i, j int) bool {
			a, b := rs[i], rs[j]
			if a.Scope != b.Scope {
				return a.Scope < b.Scope
			}
			if a.Owner != b.Owner {
				return a.Owner < b.Owner
			}
			if a.Name != b.Name {
				return a.Name < b.Name
			}
			return a.ID < b.ID
		})
		from = min(from, len(rs))
		to := min(from+size, len(rs))
		resp := ListSecretsResponse{Secrets: make([]Secret, 0, to-from)}
		for _, rec := range rs[from:to] {
			resp.Secrets = append(resp.Secrets, AdminSecret(rec))
		}
		if to < len(rs) {
			resp.Pagination.NextToken = encodePageToken(to)
		}
		return resp, nil
	})
}

// keep returns the filter as a predicate; a malformed scope is an error.
func (f ListSecretsFilter) keep() (func(Record) bool, error) {
	keep := func(Record) bool { return true }
	if f.Scope != nil {
		scope, owner, err := f.Scope.Parse()
		if err != nil {
			return nil, err
		}
		keep = func(rec Record) bool { return rec.Scope == scope && rec.Owner == owner }
	}
	if len(f.ProjectIDs) > 0 {
		inner := keep
		keep = func(rec Record) bool {
			return inner(rec) && rec.Scope == secrets.ScopeProject && slices.Contains(f.ProjectIDs, rec.Owner)
		}
	}
	return keep, nil
}

// pageTokenPrefix marks a page token; the rest is the position in decimal.
const pageTokenPrefix = "p1:"

func encodePageToken(pos int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(pageTokenPrefix + strconv.Itoa(pos)))
}

// decodePageToken returns the position a token stands for; "" is 0.
func decodePageToken(tok string) (int, error) {
	if tok == "" {
		return 0, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	rest, ok := strings.CutPrefix(string(b), pageTokenPrefix)
	pos, perr := strconv.Atoi(rest)
	if err != nil || !ok || perr != nil || pos < 0 {
		return 0, errorf(controlplane.CodeInvalidArgument, "pagination.token: not a token this server gave out")
	}
	return pos, nil
}

func (s *Server) updateSecretValue(w http.ResponseWriter, r *http.Request) {
	adminCall(s, w, r, func(req UpdateSecretValueRequest) (any, error) {
		if req.SecretID == "" {
			return nil, errorf(controlplane.CodeInvalidArgument, "secretId: is empty")
		}
		value, err := decodeValue(req.Value, req.ValueBytes)
		if err != nil {
			return nil, err
		}
		rec, changed, err := s.store.UpdateSecretValue(req.SecretID, value)
		if err != nil {
			return nil, err
		}
		if changed {
			s.log.Info("secret value updated", zap.String("id", rec.ID), zap.String("name", rec.Name), zap.String("session", rec.Session))
			s.changed(rec, valueChanged)
		}
		return UpdateSecretValueResponse{Secret: AdminSecret(rec)}, nil
	})
}

func (s *Server) deleteSecret(w http.ResponseWriter, r *http.Request) {
	adminCall(s, w, r, func(req DeleteSecretRequest) (any, error) {
		if req.SecretID == "" {
			return nil, errorf(controlplane.CodeInvalidArgument, "secretId: is empty")
		}
		rec, err := s.store.DeleteSecret(req.SecretID)
		if err != nil {
			return nil, err
		}
		s.log.Info("secret deleted", zap.String("id", rec.ID), zap.String("name", rec.Name))
		s.changed(rec, secretRemoved)
		return DeleteSecretResponse{}, nil
	})
}

func (s *Server) createEnvironment(w http.ResponseWriter, r *http.Request) {
	adminCall(s, w, r, func(req CreateEnvironmentRequest) (any, error) {
		env, token, err := s.store.CreateEnvironment(req.OrganizationID, req.ProjectID, req.UserID)
		if err != nil {
			return nil, err
		}
		s.log.Info("environment created", zap.String("id", env.ID), zap.String("organization", env.OrganizationID), zap.String("project", env.ProjectID), zap.String("user", env.UserID))
		return CreateEnvironmentResponse{EnvironmentID: env.ID, Token: token}, nil
	})
}

package proxy

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/secrets-agent/secrets-agent/internal/atomicfile"
	"github.com/secrets-agent/secrets-agent/internal/dirs"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// ServiceOptions configure a Service.
type ServiceOptions struct {
	// StateDir holds the CA (see LoadCA) and, without system trust, the
	// CA bundle the environment is pointed at.
	StateDir string
	// Listen is the proxy's loopback host:port.
	Listen string
	// Trust is the system trust store to add the CA to (SystemTrust, or
	// a test's). Nil: none; the env fragment points SSL_CERT_FILE at a
	// bundle in StateDir.
	Trust *Trust
	Log   *zap.Logger
	// ExtraRoots and Dial are Options' (for tests).
	ExtraRoots []*x509.Certificate
	Dial       func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Service is the credential proxy as the agent runs it. The agent hands it
// the desired sets of its injectors, values fetched, before each apply
// (Prepare): it swaps each proxied secret's value for its placeholder, gives
// the values to the proxy, and adds the proxy's variables to the env
// fragment while any proxied secret exists. The proxy itself, its CA and the
// trust store entry are made with the first proxied secret. It is safe for
// concurrent use.
type Service struct {
	o   ServiceOptions
	log *zap.Logger

	mu        sync.Mutex
	p         *Proxy
	addr      string
	startErr  error // the last start's failure, logged once
	env       []Var
	ph        *Placeholders        // loaded from StateDir by the first Prepare
	phSaved   []byte               // what the placeholders file holds
	installed map[string]installed // by secret id: what the last Prepare gave the proxy
}

// placeholdersFile, in StateDir, keeps the placeholders across restarts
// (ids, sessions and placeholders; never a value).
const placeholdersFile = "proxy-placeholders.json"

// installed is a credential as the proxy holds it and the value its mounts
// were handed in its place.
type installed struct {
	cred   Credential
	masked string
}

// NewService returns a service that has started nothing yet.
func NewService(o ServiceOptions) *Service {
	s := &Service{o: o, log: o.Log, installed: map[string]installed{}}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	return s
}

// EnvID prefixes the ids of the variables Prepare adds to the env set.
const EnvID = "secrets-agent-proxy:"

// Prepare readies the desired sets (injector name -> secrets, values
// fetched) for an apply, in place:
//
//	(1) Every secret with a CredentialProxy gets its placeholder as its
//	    value (a registry login gets base64(user:placeholder)), and its real
//	    value becomes a credential of the proxy. A secret handed again with
//	    the placeholder it already had (the agent kept its last applied
//	    value after a failed fetch) keeps its credential.
//	(2) A secret whose credential is invalid, or that cannot be served
//	    because the proxy could not start, is taken out of its set (it is
//	    never written with its value) and returned in the map, by id.
//	(3) The proxy (started now if need be) gets exactly the credentials of
//	    this call: a secret gone from the sets is no longer added to any
//	    request.
//	(4) While there is a credential, envSet's set (when envSet names one)
//	    gets the proxy and CA variables (see Env), except a variable a
//	    secret of the set already sets, which wins.
//
// With no proxied secret it starts nothing and changes nothing but (3).
func (s *Service) Prepare(sets map[string][]secrets.Secret, envSet string) map[string]error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.loadPlaceholders()
	defer s.savePlaceholders()
	errs := map[string]error{}
	var creds []Credential
	next := map[string]installed{}
	var ids []string
	for name, set := range sets { // (1), (2)
		out := set[:0]
		for _, sec := range set {
			if sec.CredentialProxy == nil {
				out = append(out, sec)
				continue
			}
			ids = append(ids, sec.ID)
			in, err := s.credential(sec)
			if err == nil {
				err = s.start()
			}
			if err != nil {
				errs[sec.ID] = err
				continue
			}
			sec.Value = secrets.Value(in.masked)
			out = append(out, sec)
			creds = append(creds, in.cred)
			next[sec.ID] = in
		}
		sets[name] = out
	}
	s.ph.Retain(ids)
	s.installed = next
	if s.p != nil { // (3)
		for id, err := range s.p.Set(creds) {
			errs[id] = err // Validate ran in credential: not expected
		}
	}
	if len(creds) > 0 && envSet != "" { // (4)
		if set, ok := sets[envSet]; ok {
			sets[envSet] = s.addEnv(set)
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// loadPlaceholders reads the placeholders an earlier run handed out, once;
// a missing or unreadable file starts afresh (an unreadable one is logged).
func (s *Service) loadPlaceholders() {
	if s.ph != nil {
		return
	}
	s.ph = &Placeholders{}
	b, err := safeopen.ReadIn(s.o.StateDir, placeholdersFile, maxCAFile)
	if err == nil {
		s.ph, err = LoadPlaceholders(b)
	}
	if err != nil {
		s.ph = &Placeholders{}
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("credential proxy: placeholders of the last run not read; new ones are handed out", zap.Error(err))
		}
	}
	s.phSaved = s.ph.Encode()
}

// savePlaceholders writes the placeholders to StateDir (0600) when they
// changed; a failure is logged: it costs only new placeholders after a
// restart.
func (s *Service) savePlaceholders() {
	b := s.ph.Encode()
	if bytes.Equal(b, s.phSaved) {
		return
	}
	root, err := dirs.Open(s.o.StateDir, 0o700, -1, -1)
	if err == nil {
		_, err = atomicfile.Write(root, placeholdersFile, b, atomicfile.Options{Mode: 0o600, UID: -1, GID: -1})
		root.Close()
	}
	if err != nil {
		s.log.Warn("credential proxy: placeholders not saved; a restart hands out new ones", zap.Error(err))
		return
	}
	s.phSaved = b
}

// credential returns the credential of sec and the value its mount gets.
func (s *Service) credential(sec secrets.Secret) (installed, error) {
	if prev, ok := s.installed[sec.ID]; ok && string(sec.Value) == prev.masked {
		return prev, nil
	}
	ph := s.ph.For(sec.ID, sec.Session)
	c := Credential{SecretID: sec.ID, Header: sec.CredentialProxy.Header, TargetHosts: sec.CredentialProxy.TargetHosts,
		Placeholder: ph, Value: sec.Value}
	if err := c.Validate(); err != nil {
		return installed{}, fmt.Errorf("credential proxy: %w", err)
	}
	masked := ph
	if sec.Mount.Kind == secrets.MountRegistry {
		if up, err := base64.StdEncoding.DecodeString(string(sec.Value)); err == nil {
			if user, _, ok := strings.Cut(string(up), ":"); ok {
				masked = base64.StdEncoding.EncodeToString([]byte(user + ":" + ph))
			}
		}
	}
	return installed{cred: c, masked: masked}, nil
}

// start makes the CA, trusts it and starts the proxy, unless it runs. A
// failure (the port taken, the state dir unwritable) is tried again at the
// next Prepare, and logged when it differs from the last one.
func (s *Service) start() error {
	if s.p != nil {
		return nil
	}
	err := s.startOnce()
	if err != nil && (s.startErr == nil || s.startErr.Error() != err.Error()) {
		s.log.Error("credential proxy not started: its secrets are not applied", zap.Error(err))
	}
	s.startErr = err
	return err
}

func (s *Service) startOnce() error {
	ca, err := LoadCA(s.o.StateDir)
	if err != nil {
		return err
	}
	trust := s.o.Trust
	caCert, bundle, trusted := filepath.Join(s.o.StateDir, CACertFile), filepath.Join(s.o.StateDir, "proxy-ca-bundle.pem"), false
	if trust != nil {
		if _, err := trust.Install(ca.CertPEM()); err != nil {
			// Fail closed: clients will not trust the proxy's leaves,
			// so no request carries the value.
			s.log.Error("credential proxy: CA not added to the trust store; clients will refuse the proxy's certificates", zap.Error(err))
		} else {
			caCert, bundle, trusted = trust.CertPath(), trust.Bundle, true
		}
	}
	if !trusted {
		if err := WriteBundle(bundle, ca.CertPEM()); err != nil {
			return err
		}
	}
	p, err := New(Options{CA: ca, Log: s.log, ExtraRoots: s.o.ExtraRoots, Dial: s.o.Dial})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", s.o.Listen)
	if err != nil {
		_ = p.Close()
		return fmt.Errorf("credential proxy: listen: %w", err)
	}
	go func() {
		if err := p.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("credential proxy stopped", zap.Error(err))
		}
	}()
	s.p, s.addr = p, l.Addr().String()
	s.env = Env(s.addr, caCert, bundle, trusted)
	s.log.Info("credential proxy listening", zap.String("addr", s.addr), zap.Bool("system_trust", trusted))
	return nil
}

// addEnv returns set with the proxy's variables added, each as a secret of
// mount env with an id starting with EnvID.
func (s *Service) addEnv(set []secrets.Secret) []secrets.Secret {
	taken := map[string]bool{}
	for _, sec := range set {
		if sec.Mount.Kind == secrets.MountEnv {
			taken[sec.Mount.Target] = true
		}
	}
	for _, v := range s.env {
		if taken[v.Name] {
			s.log.Warn("credential proxy: a secret sets this variable, so the proxy's value is not added", zap.String("variable", v.Name))
			continue
		}
		set = append(set, secrets.Secret{ID: EnvID + v.Name, Name: v.Name, Scope: secrets.ScopeRunner,
			Mount: secrets.Mount{Kind: secrets.MountEnv, Target: v.Name}, Value: secrets.Value(v.Value)})
	}
	return set
}

// Addr returns the proxy's address, or "" before it started.
func (s *Service) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Close stops the proxy. The CA stays trusted (Untrust removes it).
func (s *Service) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		return nil
	}
	return s.p.Close()
}

package gitcred

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/secrets-agent/secrets-agent/injectors"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// Section is this injector's part of the agent's config, injectors.gitcred
// (config.Section; injectors/builtin hands it to config.Load).
type Section struct {
	Enabled bool `yaml:"enabled"`
	// Username is the user name the git credential helper answers with
	// every token; the token is the password.
	Username string `yaml:"username"`
}

// DefaultSection returns the section with its defaults: enabled, user name
// oauth2.
func DefaultSection() *Section { return &Section{Enabled: true, Username: DefaultUsername} }

// Derive has no default that depends on the user.
func (s *Section) Derive(string) {}

// Check requires a user name git's credential protocol can carry.
func (s *Section) Check(string) []error {
	if s.Username == "" {
		return []error{errors.New("username: required: git sends no password without a user name")}
	}
	if strings.ContainsFunc(s.Username, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return []error{fmt.Errorf("username: %q has a control character, which git's credential protocol cannot carry", s.Username)}
	}
	return nil
}

// Builder makes the injector from the section: its helper is this
// program's git-credential command on the agent's socket. The git configs
// install-hooks adds the include to, and File itself, which the include
// names, are reserved even with the injector disabled.
func (s *Section) Builder(site injectors.Site) injectors.Builder {
	sysGit, _ := Include(true, site.Home, "")
	reserved := []injectors.Reserved{{Path: sysGit, What: "a file install-hooks writes"}}
	if site.Home != "" {
		userGit, _ := Include(false, site.Home, "")
		reserved = append(reserved, injectors.Reserved{Path: userGit, What: "a file install-hooks writes"},
			injectors.Reserved{Path: filepath.Join(site.Home, File), What: "the git credential helpers file gitcred manages"})
	}
	return injectors.Builder{Name: "gitcred", Kind: secrets.MountGitCredential, Enabled: s.Enabled, Reserved: reserved,
		Build: func(o injectors.Owner) (injectors.Injector, error) {
			exe, err := os.Executable()
			if err != nil {
				return nil, fmt.Errorf("gitcred: the agent's own path, for git's credential helper: %w", err)
			}
			return New(Options{Username: s.Username, Owner: o, Helper: []string{exe, "git-credential", "--socket", site.Socket}})
		}}
}

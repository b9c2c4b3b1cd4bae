package secretfile

import (
	"path"

	"github.com/secrets-agent/secrets-agent/injectors"
)

// startupFiles are the files and directories in a home that programs read
// at start-up without being asked — shells at login and at every prompt,
// sshd at every login, git at every `git status` a prompt runs, prompt
// tools — and take code, commands, or access rules from. A file secret may
// not target them (nor anything below a directory among them): a value
// there would run as the user in every new shell, or let someone in.
//
// The injector writes files 0600 or 0400, never executable, so only what
// something sources or reads as configuration matters here. Files that run
// code only when the user asks for the program (~/.ssh/config, an editor's
// or a pager's config) are targets like any other.
var startupFiles = []struct{ rel, what string }{
	{".profile", "a shell start-up file"},
	{".bash_profile", "a shell start-up file"},
	{".bash_login", "a shell start-up file"},
	{".bashrc", "a shell start-up file"},
	{".bash_aliases", "a shell start-up file"},
	{".bash_logout", "a shell start-up file"},
	{".zshenv", "a shell start-up file"},
	{".zprofile", "a shell start-up file"},
	{".zshrc", "a shell start-up file"},
	{".zlogin", "a shell start-up file"},
	{".zlogout", "a shell start-up file"},
	{".config/fish", "fish's start-up directory"},
	{".pam_environment", "the login environment file"},
	{".config/environment.d", "the login environment directory"},
	{".config/systemd", "the user's systemd units"},
	{".ssh/authorized_keys", "ssh's list of keys that may log in"},
	{".ssh/authorized_keys2", "ssh's list of keys that may log in"},
	{".ssh/rc", "the file sshd runs at every login"},
	{".ssh/environment", "the environment sshd sets at every login"},
	{".gitconfig", "git's config, read at every git command (prompts run git status)"},
	{".config/git", "git's config directory, read at every git command (prompts run git status)"},
	{".config/starship.toml", "the starship prompt's config, read at every prompt"},
	{".config/direnv", "direnv's config directory, read at every prompt"},
	{".direnvrc", "direnv's start-up file, read at every prompt"},
}

// startupReserved is startupFiles in home; none when home is "".
func startupReserved(home string) []injectors.Reserved {
	if !path.IsAbs(home) {
		return nil
	}
	out := make([]injectors.Reserved, 0, len(startupFiles))
	for _, f := range startupFiles {
		out = append(out, injectors.Reserved{Path: path.Join(home, f.rel), What: f.what})
	}
	return out
}

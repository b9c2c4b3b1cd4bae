package gitcred

import (
	"fmt"
	"path"

	"github.com/secrets-agent/secrets-agent/internal/dirs"
	"github.com/secrets-agent/secrets-agent/internal/safeopen"
)

// SystemGitConfig is git's system-wide config file as distributions build
// git (prefix /usr): every user's git reads it first.
const SystemGitConfig = "/etc/gitconfig"

// Include returns the file install-hooks adds the include of File to, and the
// lines it keeps there (between its markers). Both places are read by git
// before the user's ~/.gitconfig, which is never touched, so that for a
// managed host our helper is asked first and a user's own helper for it
// after ours:
//
//   - system (install-hooks --system, for every user): SystemGitConfig;
//   - otherwise the user's XDG git config, $XDG_CONFIG_HOME/git/config
//     (xdgConfigHome, when it is absolute and inside home) or else
//     ~/.config/git/config.
//
// The include names "~/" + File, which git expands to the home of whoever
// runs it: a user without the file (another user, or nobody before the
// first pass) is not affected, as git skips an include that does not exist.
func Include(system bool, home, xdgConfigHome string) (file, text string) {
	text = "# Added by `secrets-agent install-hooks` (remove with `secrets-agent install-hooks --uninstall`):\n" +
		"# git credential helpers for the hosts that have a git-credential secret.\n" +
		"[include]\n\tpath = ~/" + File + "\n"
	switch {
	case system:
		file = SystemGitConfig
	case path.IsAbs(xdgConfigHome) && dirs.Below(home, xdgConfigHome):
		file = path.Join(xdgConfigHome, "git/config")
	default:
		file = path.Join(home, ".config/git/config")
	}
	return file, text
}

// RemoveFile removes File from home when it is ours (it starts with our
// header), for install-hooks --uninstall; it reports whether it did. A file
// that is not ours, or none, is left alone with no error.
func RemoveFile(home string) (bool, error) {
	root, err := safeopen.OpenRoot(home)
	if err != nil {
		return false, fmt.Errorf("open home %s: %w", home, err)
	}
	defer root.Close()
	_, ours, err := readOwn(root)
	if err != nil || !ours {
		return false, err
	}
	if err := root.Remove(File); err != nil {
		return false, fmt.Errorf("remove %s: %w", path.Join(home, File), err)
	}
	return true, nil
}

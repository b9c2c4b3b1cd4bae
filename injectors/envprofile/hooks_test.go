package envprofile

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// snapshot returns every regular file under dir with its content.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		m[p] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func equalSnap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestInstallHooksIsIdempotentAndUninstallRestoresEveryByte installs twice
// (the second run changes nothing), then uninstalls and compares every file
// with what was there before: rc files with and without a final newline,
// empty, missing, CRLF, and a symlinked one.
func TestInstallHooksIsIdempotentAndUninstallRestoresEveryByte(t *testing.T) {
	for _, mode := range []HookMode{HookSystem, HookUser} {
		t.Run(string(mode), func(t *testing.T) {
			root := t.TempDir()
			home := "/home/u"
			write := func(p, s string) {
				full := filepath.Join(root, p)
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(full, []byte(s), 0o640); err != nil {
					t.Fatal(err)
				}
			}
			write("etc/bash.bashrc", "# system bashrc\nPS1='$ '\n")
			write("etc/zsh/zshrc", "setopt nobeep") // no final newline
			write(home+"/.profile", "")             // empty
			write(home+"/dotfiles/bashrc", "alias ll='ls -l'\r\n")
			if err := os.Symlink("dotfiles/bashrc", filepath.Join(root, home, ".bashrc")); err != nil {
				t.Fatal(err)
			}
			// ~/.zshrc does not exist.
			before := snapshot(t, root)
			o := HookOptions{Mode: mode, Root: root, Home: home}

			first, err := InstallHooks(o)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range first {
				if c.Action == "unchanged" {
					t.Errorf("first install left %s unchanged", c.Path)
				}
			}
			installed := snapshot(t, root)
			second, err := InstallHooks(o)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range second {
				if c.Action != "unchanged" {
					t.Errorf("second install: %s %s", c.Action, c.Path)
				}
			}
			if !equalSnap(installed, snapshot(t, root)) {
				t.Error("second install changed files")
			}
			for p, s := range installed {
				if n := bytes.Count([]byte(s), []byte(BlockStart)); n > 1 {
					t.Errorf("%s has %d blocks", p, n)
				}
			}
			if _, err := UninstallHooks(o); err != nil {
				t.Fatal(err)
			}
			after := snapshot(t, root)
			if !equalSnap(before, after) {
				for p, s := range after {
					if before[p] != s {
						t.Errorf("%s after uninstall:\n%q\nwant\n%q", p, s, before[p])
					}
				}
				for p := range before {
					if _, ok := after[p]; !ok {
						t.Errorf("%s is gone", p)
					}
				}
			}
			if fi, err := os.Lstat(filepath.Join(root, home, ".bashrc")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
				t.Errorf("~/.bashrc is no longer a symlink: %v", err)
			}
			if fi, err := os.Stat(filepath.Join(root, "etc/bash.bashrc")); err != nil || fi.Mode().Perm() != 0o640 {
				t.Errorf("/etc/bash.bashrc mode changed: %v", err)
			}
			again, err := UninstallHooks(o)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range again {
				if c.Action != "absent" {
					t.Errorf("second uninstall: %s %s", c.Action, c.Path)
				}
			}
		})
	}
}

// TestHookTextNamesTheOverride: every installed hook says how to point it
// at another directory.
func TestHookTextNamesTheOverride(t *testing.T) {
	for _, sh := range []string{"sh", "fish"} {
		for _, m := range []HookMode{HookSystem, HookUser} {
			b, err := HookScript(sh, m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(b, []byte("SECRETS_AGENT_ENV_DIR")) || bytes.Contains(b, []byte("@DEFAULT_DIR")) {
				t.Errorf("%s/%s hook does not name the override or has a placeholder", sh, m)
			}
		}
	}
}

// TestUserHooksStayInTheHome: a user's rc file or config dir that is a
// symlink out of the home (to /etc, or by ../) makes that target fail, and
// nothing outside the home changes, even when install-hooks --user runs as
// root.
func TestUserHooksStayInTheHome(t *testing.T) {
	root := t.TempDir()
	home := "/home/u"
	for _, d := range []string{"etc", home} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	etcRC := filepath.Join(root, "etc/bash.bashrc")
	if err := os.WriteFile(etcRC, []byte("# system\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/bash.bashrc", filepath.Join(root, home, ".bashrc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../etc", filepath.Join(root, home, ".config")); err != nil {
		t.Fatal(err)
	}
	changes, err := InstallHooks(HookOptions{Mode: HookUser, Root: root, Home: home})
	if err == nil {
		t.Fatalf("install through symlinks out of the home succeeded: %v", changes)
	}
	if b, _ := os.ReadFile(etcRC); string(b) != "# system\n" {
		t.Errorf("/etc/bash.bashrc was changed: %q", b)
	}
	if entries, _ := os.ReadDir(filepath.Join(root, "etc")); len(entries) != 1 {
		t.Errorf("something was written into /etc: %v", entries)
	}
	if b, _ := os.ReadFile(filepath.Join(root, home, ".profile")); !strings.Contains(string(b), BlockStart) {
		t.Errorf("~/.profile, a plain file in the home, did not get the hook")
	}
}

// TestExtraBlocksAreKeptAndRemovedLikeTheRcFiles: a block another injector
// asks for (gitcred's include) is added to an existing file, created in a
// missing one, left alone on a second install, and removed to the byte.
func TestExtraBlocksAreKeptAndRemovedLikeTheRcFiles(t *testing.T) {
	root := t.TempDir()
	home := "/home/u"
	existing := filepath.Join(root, home, ".gitconfig-like")
	if err := os.MkdirAll(filepath.Dir(existing), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(existing, []byte("[user]\n\tname = me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, root)
	o := HookOptions{Mode: HookUser, Root: root, Home: home, Blocks: []Block{
		{Path: home + "/.gitconfig-like", Text: "[include]\n\tpath = ~/x\n"},
		{Path: home + "/.config/git/config", Text: "[include]\n\tpath = ~/x\n"},
	}}
	if _, err := InstallHooks(o); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(existing)
	if want := "[user]\n\tname = me\n\n" + BlockStart + "\n[include]\n\tpath = ~/x\n" + BlockEnd + "\n"; string(got) != want {
		t.Errorf("block added as %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(root, home, ".config/git/config")); err != nil {
		t.Errorf("missing file not created: %v", err)
	}
	changes, err := InstallHooks(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if c.Action != "unchanged" {
			t.Errorf("second install: %s %s", c.Action, c.Path)
		}
	}
	if _, err := UninstallHooks(o); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, root); !equalSnap(before, after) {
		t.Errorf("uninstall left %v, want %v", after, before)
	}
	o.Blocks = []Block{{Path: "/etc/gitconfig", Text: "x\n"}}
	if _, err := InstallHooks(o); err == nil {
		t.Error("a user's block outside the home was accepted")
	}
}

// TestHookFilesListsEveryFileInstallHooksWrites: whichever rc file names a
// distribution uses, every path InstallHooks reports in either mode is in
// HookFiles, which the agent keeps file secrets off.
func TestHookFilesListsEveryFileInstallHooksWrites(t *testing.T) {
	home := "/home/u"
	listed := map[string]bool{}
	for _, p := range HookFiles(home) {
		listed[p] = true
	}
	for _, rcs := range [][]string{{"etc/bash.bashrc", "etc/zsh/zshrc"}, {"etc/bashrc", "etc/zshrc"}} {
		for _, mode := range []HookMode{HookSystem, HookUser} {
			root := t.TempDir()
			for _, p := range rcs {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, p), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.MkdirAll(filepath.Join(root, home), 0o755); err != nil {
				t.Fatal(err)
			}
			changes, err := InstallHooks(HookOptions{Mode: mode, Root: root, Home: home})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range changes {
				if !listed[c.Path] {
					t.Errorf("%s (%s, rc files %v) is written by InstallHooks but not in HookFiles", c.Path, mode, rcs)
				}
			}
		}
	}
}

package dockercfg

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/secrets-agent/secrets-agent/internal/dirs"
)

// takeOver, for a pass of Apply that writes entries, makes
// sure config.json ends up the environment's user's and holds no one
// else's credentials. A config.json owned by someone else (root's 0644 one
// in the user's home, another user's) is
//
//   - taken over when it holds no credential the injector did not write
//     (an auths entry, under any case of "auths" and of its fields: docker
//     reads both case-insensitively) and, unless the user could read it
//     already (its mode lets others, or the user's group, read it), no key
//     but harmless ones (harmlessKeys) and the injector's own entries: it is
//     written owned by Owner, mode 0600, and the outcome notes it;
//   - refused otherwise: the pass fails naming both owners and what the
//     file holds, and neither is given the other's credentials or settings
//     (HttpHeaders, proxies, credsStore, credHelpers may all carry them).
//
// It returns the note for the outcomes ("" when the file is the user's).
func (in *Injector) takeOver(p *pass, r configRead, man *manifest) (string, error) {
	if r.info == nil {
		return "", nil
	}
	uid, gid := in.o.Owner.UID, in.o.Owner.GID
	user := uid
	if user < 0 {
		user = os.Geteuid() // the agent runs as the user
	}
	if p.uid == user {
		return "", nil
	}
	perm := r.info.Mode().Perm()
	readable := perm&0o004 != 0 || perm&0o040 != 0 && gid >= 0 && p.gid == gid
	for _, top := range slices.Sorted(maps.Keys(p.doc.top)) {
		switch key := strings.ToLower(top); {
		case key == sectionAuths || key == strings.ToLower(sectionCredHelpers):
			entries, err := p.doc.section(top)
			if err != nil {
				return "", err
			}
			for _, name := range slices.Sorted(maps.Keys(entries)) {
				entry := entries[name]
				if rec, ok := man.find(top, name); ok && man.owns(rec, entry) {
					continue
				}
				if key == sectionAuths && holdsCredential(entry) {
					return "", fmt.Errorf("is owned by uid %d, not by the environment's user (uid %d), and holds credentials of its own (%s[%s]): refusing to write into another user's file or to hand it over; move it away or give it to the user", p.uid, user, top, name)
				}
				if key != sectionAuths && !readable {
					return "", fmt.Errorf("is owned by uid %d, not by the environment's user (uid %d), and holds %s[%s], which that user cannot read: refusing to hand it over; move it away or give it to the user", p.uid, user, top, name)
				}
			}
		case !readable && !harmlessKeys[key]:
			return "", fmt.Errorf("is owned by uid %d, not by the environment's user (uid %d), and holds %q, which that user cannot read and may carry credentials: refusing to hand it over; move it away or give it to the user", p.uid, user, top)
		}
	}
	from := p.uid
	p.uid, p.gid, p.perm, p.fixMode = uid, gid, 0o600, true
	return fmt.Sprintf("took over config.json from uid %d: it held no credentials; now the user's, 0600", from), nil
}

// harmlessKeys are the top-level config.json keys, lower-cased, that carry
// nothing private (output formats, key bindings, the current context), so
// that a file holding only these may be handed to a user who could not read
// it. Any other key might (HttpHeaders, proxies, credsStore, plugins, keys
// of tools docker does not know).
var harmlessKeys = map[string]bool{
	"psformat": true, "imagesformat": true, "pluginsformat": true, "statsformat": true, "servicesformat": true,
	"secretformat": true, "configformat": true, "nodesformat": true, "tasksformat": true, "networksformat": true,
	"volumesformat": true, "serviceinspectformat": true, "detachkeys": true, "currentcontext": true,
	"experimental": true, "stackorchestrator": true,
}

// holdsCredential reports whether an auths entry carries a credential: any
// of credentialFields other than serveraddress, in any case (as docker
// reads them), not empty.
func holdsCredential(entry json.RawMessage) bool {
	var fields map[string]json.RawMessage
	if json.Unmarshal(entry, &fields) != nil {
		return false
	}
	for name, v := range fields {
		f := strings.ToLower(name)
		if slices.Contains(credentialFields, f) && f != "serveraddress" && string(v) != `""` && string(v) != "null" {
			return true
		}
	}
	return false
}

// takeOverDir gives the config dir to Owner when it lies in Owner's home
// (reached through an os.Root at the home, no symlink followed) and someone
// else owns it, as `sudo docker ...` leaves a root-owned ~/.docker: the user
// could not otherwise reach the config.json the agent writes for them. The
// files inside keep their owners. Outside the home ($DOCKER_CONFIG set by the
// admin), or when the agent cannot chown (UID -1), it does nothing.
func (in *Injector) takeOverDir(root *os.Root) error {
	uid, gid := in.o.Owner.UID, in.o.Owner.GID
	if uid < 0 || in.o.Owner.Home == "" || in.configDir == in.o.Owner.Home || !dirs.Below(in.o.Owner.Home, in.configDir) {
		return nil
	}
	fi, err := root.Stat(".")
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) == uid {
		return nil
	}
	if err := root.Chown(".", uid, gid); err != nil {
		return fmt.Errorf("give %s to uid %d: %w", in.configDir, uid, err)
	}
	return nil
}

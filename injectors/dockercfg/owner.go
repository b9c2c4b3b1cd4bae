package dockercfg

import (
	"encoding/json"
	"fmt"
	"os"
	"syscall"

	"github.com/secrets-agent/secrets-agent/internal/dirs"
)

// takeOver, for a pass of Apply that writes entries, makes
// sure config.json ends up the environment's user's and holds no one
// else's credentials. A config.json owned by someone else (root's 0644 one
// in the user's home, another user's) is
//
//   - taken over when it holds no credential the injector did not write:
//     it is written owned by Owner, mode 0600, and the outcome notes it;
//   - refused otherwise: the pass fails naming both owners, and neither is
//     given the other's credentials.
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
	auths, err := p.doc.section(sectionAuths)
	if err != nil {
		return "", err
	}
	for key, entry := range auths {
		if rec, ok := man.find(sectionAuths, key); ok && man.owns(rec, entry) {
			continue
		}
		if holdsCredential(entry) {
			return "", fmt.Errorf("is owned by uid %d, not by the environment's user (uid %d), and holds credentials of its own (auths[%s]): refusing to write into another user's file or to hand it over; move it away or give it to the user", p.uid, user, key)
		}
	}
	from := p.uid
	p.uid, p.gid, p.perm, p.fixMode = uid, gid, 0o600, true
	return fmt.Sprintf("took over config.json from uid %d: it held no credentials; now the user's, 0600", from), nil
}

// holdsCredential reports whether an auths entry carries a credential: any
// of credentialFields other than serveraddress, not empty.
func holdsCredential(entry json.RawMessage) bool {
	var fields map[string]json.RawMessage
	if json.Unmarshal(entry, &fields) != nil {
		return false
	}
	for _, f := range credentialFields {
		if v, ok := fields[f]; ok && f != "serveraddress" && string(v) != `""` && string(v) != "null" {
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

// Package systemd holds no code: it is the home of the unit files
// (secrets-agent.service, secrets-agent.socket, user/secrets-agent.service)
// and install.sh, and of the tests that verify them with systemd-analyze and
// install then uninstall into a temp root.
package systemd

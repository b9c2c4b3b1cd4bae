package secrets

import "sort"

// The bounds execve puts on an environment, and the agent's share of it.
//
// Linux refuses an execve whose single argument or environment string
// (NAME=VALUE and its NUL) is longer than MAX_ARG_STRLEN, 32 pages, and one
// whose strings together (with their pointers) pass ARG_MAX, a quarter of the
// stack limit (2 MiB under the usual 8 MiB). A shell that has sourced a
// fragment holding such a variable fails every later exec with E2BIG, so a
// secret that would break that is refused instead of written.
const (
	// MaxEnvString is the longest NAME=VALUE string, counting its NUL, that
	// a secret may make: MAX_ARG_STRLEN, 32 pages of 4 KiB.
	MaxEnvString = 32 * 4096
	// EnvBudget is what all environment-variable secrets of an environment
	// may take together, counting each NAME=VALUE string with its NUL and
	// its 8-byte pointer: 1 MiB, half of the usual ARG_MAX, which leaves the
	// other half to the user's own environment and the command line.
	EnvBudget = 1 << 20
)

// envSize is what the variable name=value costs in execve's budget.
func envSize(name string, value []byte) int { return len(name) + 1 + len(value) + 1 + 8 }

// checkEnvString returns an *Error when s's NAME=VALUE string is longer than
// MaxEnvString, or nil.
func checkEnvString(s Secret) error {
	if n := len(s.Mount.Target) + 1 + len(s.Value) + 1; n > MaxEnvString {
		return invalid(s, "value", "makes a %d-byte NAME=VALUE string, over the %d bytes execve accepts for one environment string",
			n, MaxEnvString)
	}
	return nil
}

// OverEnvBudget decides which of env, environment-variable secrets with
// their values, fit into EnvBudget together, and returns an *Error for each
// that does not, keyed by its index in env. The others are applied. A
// secret longer than MaxEnvString never fits.
//
// The order is deterministic and keeps what matters most: secrets are taken
// by scope, highest first, then by variable name, and each is kept if it
// still fits, so the secrets refused are those of the lowest scope and,
// within a scope, the last by name; a small secret after a refused large one
// may still fit. It returns an empty map when everything fits.
func OverEnvBudget(env []Secret) map[int]error {
	errs := map[int]error{}
	order := make([]int, len(env))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		sa, sb := env[order[a]], env[order[b]]
		if sa.Scope != sb.Scope {
			return sa.Scope > sb.Scope
		}
		return sa.Mount.Target < sb.Mount.Target
	})
	used := 0
	for _, i := range order {
		s := env[i]
		if err := checkEnvString(s); err != nil {
			errs[i] = err
			continue
		}
		n := envSize(s.Mount.Target, s.Value)
		if used+n > EnvBudget {
			errs[i] = invalid(s, "value", "does not fit: the environment-variable secrets together may take %d bytes "+
				"(execve's limit; %d are taken by secrets of higher scope or earlier name, this one needs %d)", EnvBudget, used, n)
			continue
		}
		used += n
	}
	return errs
}

package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func envOf(id, name string, scope Scope, size int) Secret {
	return Secret{ID: id, Name: "S_" + id, Scope: scope, Mount: Mount{Kind: MountEnv, Target: name}, Value: bytes.Repeat([]byte("v"), size)}
}

func TestEnvStringOverExecveLimitIsRefused(t *testing.T) {
	// NAME=VALUE and the NUL: "BIG=" is 4 bytes.
	fits := envOf("a", "BIG", ScopeUser, MaxEnvString-5)
	if err := ValidateValue(fits, Limits{}); err != nil {
		t.Errorf("a string of exactly %d bytes: %v", MaxEnvString, err)
	}
	over := envOf("b", "BIG", ScopeUser, MaxEnvString-4)
	err := ValidateValue(over, Limits{})
	var se *Error
	if !errors.As(err, &se) || se.Field != "value" || !strings.Contains(se.Reason, "execve") {
		t.Errorf("a string of %d bytes: %v, want a value error naming execve", MaxEnvString+1, err)
	}
	if errs := OverEnvBudget([]Secret{over, fits}); errs[0] == nil || errs[1] != nil {
		t.Errorf("OverEnvBudget = %v, want only the long one refused", errs)
	}
}

func TestEnvBudgetRefusesLowestScopeAndLastNamesFirst(t *testing.T) {
	const size = 100 << 10
	var env []Secret
	// Eight at organization scope and four at user scope: twelve 100 KiB
	// secrets, of which ten fit into 1 MiB.
	for i := range 8 {
		env = append(env, envOf(fmt.Sprintf("o%d", i), fmt.Sprintf("ORG_%d", i), ScopeOrganization, size))
	}
	for i := range 4 {
		env = append(env, envOf(fmt.Sprintf("u%d", i), fmt.Sprintf("USER_%d", i), ScopeUser, size))
	}
	small := envOf("z", "ZZZ_SMALL", ScopeOrganization, 10)
	env = append(env, small)
	errs := OverEnvBudget(env)
	var refused []string
	for i, s := range env {
		if errs[i] != nil {
			refused = append(refused, s.Mount.Target)
			if !strings.Contains(errs[i].Error(), "does not fit") {
				t.Errorf("%s: %v", s.Mount.Target, errs[i])
			}
		}
	}
	if got := strings.Join(refused, " "); got != "ORG_6 ORG_7" {
		t.Errorf("refused %q, want the last two organization secrets by name (and the small one kept)", got)
	}
	if again := OverEnvBudget(env); len(again) != len(errs) {
		t.Errorf("not deterministic: %d then %d refused", len(errs), len(again))
	}
	if errs := OverEnvBudget(env[:3]); len(errs) != 0 {
		t.Errorf("three secrets under budget: %v", errs)
	}
}

package devserver

import (
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/secrets-agent/secrets-agent/secrets"
)

func names(rs []Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Scope.String()+"/"+r.Owner+"/"+r.Name)
	}
	slices.Sort(out)
	return out
}

// TestVisibleReadsOnlyTheEnvironmentsOwners checks the owners index: an
// environment sees its organization's, project's and user's secrets and no
// one else's, including after a delete, and a database from before the
// index gets it built when opened.
func TestVisibleReadsOnlyTheEnvironmentsOwners(t *testing.T) {
	dir := t.TempDir()
	st, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	add := func(scope secrets.Scope, owner, name string) Record {
		t.Helper()
		r, err := st.CreateSecret(Record{Name: name, Scope: scope, Owner: owner, Mount: secrets.Mount{Kind: secrets.MountEnv, Target: name}}, []byte("v"))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	add(secrets.ScopeOrganization, "acme", "ORG_ONE")
	add(secrets.ScopeOrganization, "acmex", "OTHER_ORG") // an owner whose id extends acme's
	add(secrets.ScopeProject, "web", "PROJ_ONE")
	gone := add(secrets.ScopeUser, "alice", "USER_GONE")
	add(secrets.ScopeUser, "alice", "USER_ONE")
	add(secrets.ScopeUser, "bob", "BOB_ONE")
	add(secrets.ScopeProject, "acme", "PROJECT_NAMED_LIKE_THE_ORG")
	if _, err := st.DeleteSecret(gone.ID); err != nil {
		t.Fatal(err)
	}
	env := Environment{OrganizationID: "acme", ProjectID: "web", UserID: "alice"}
	want := []string{"organization/acme/ORG_ONE", "project/web/PROJ_ONE", "user/alice/USER_ONE"}
	check := func(when string) {
		t.Helper()
		rs, err := st.Visible(env)
		if err != nil {
			t.Fatal(err)
		}
		if got := names(rs); !slices.Equal(got, want) {
			t.Fatalf("%s: visible %v, want %v", when, got, want)
		}
	}
	check("indexed")

	// A database written before the index existed: drop it and reopen.
	if err := st.db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketOwners) }); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if st, err = OpenStore(dir); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	check("after rebuilding the index")
}

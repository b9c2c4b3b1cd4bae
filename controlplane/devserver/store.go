package devserver

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/secrets-agent/secrets-agent/controlplane"
	"github.com/secrets-agent/secrets-agent/secrets"
)

// Errors of the store, matched with errors.Is. Validation failures are
// *secrets.Error instead.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

var (
	bucketSecrets = []byte("secrets")      // secret id -> storedSecret (JSON)
	bucketEnvs    = []byte("environments") // environment id -> Environment (JSON)
	bucketTokens  = []byte("tokens")       // SHA-256 of a token -> environment id
	// bucketOwners indexes secrets by owner, so that what an environment
	// sees is read without decoding every secret in the store:
	// scope byte, owner, NUL, secret id -> ownerEntry (empty in an index
	// built before it held one).
	bucketOwners = []byte("owners")
)

// Record is a stored secret without its value. Owner is the id of the
// organization, project or user named by Scope. Session changes exactly when
// the value changes.
type Record struct {
	ID        string               `json:"id"`
	Name      string               `json:"name"`
	Scope     secrets.Scope        `json:"scope"`
	Owner     string               `json:"owner"`
	Mount     secrets.Mount        `json:"mount"`
	Creator   controlplane.Subject `json:"creator,omitzero"`
	Session   string               `json:"session"`
	CreatedAt time.Time            `json:"createdAt"`
	UpdatedAt time.Time            `json:"updatedAt"`
	// CredentialProxy, when set, tells environments to hand the value to
	// a credential proxy and mount a placeholder.
	CredentialProxy *secrets.CredentialProxy `json:"credentialProxy,omitempty"`
}

// Secret returns r in the domain's form, without a value.
func (r Record) Secret() secrets.Secret {
	return secrets.Secret{ID: r.ID, Name: r.Name, Scope: r.Scope, Session: r.Session, Mount: r.Mount, CredentialProxy: r.CredentialProxy}
}

// storedSecret is a Record with its value sealed: a 12-byte random nonce
// followed by the AES-256-GCM ciphertext, authenticated with the secret's id as
// additional data (so a sealed value moved to another record does not open).
type storedSecret struct {
	Record
	Sealed []byte `json:"sealed"`
}

// Environment is an environment of one organization, project and user: it
// sees the secrets those three own. Only the SHA-256 of its token is kept.
type Environment struct {
	ID             string    `json:"id"`
	OrganizationID string    `json:"organizationId"`
	ProjectID      string    `json:"projectId,omitempty"`
	UserID         string    `json:"userId"`
	CreatedAt      time.Time `json:"createdAt"`
}

// Sees reports whether the secret r is visible to e: it belongs to e's
// organization, project or user.
func (e Environment) Sees(r Record) bool {
	switch r.Scope {
	case secrets.ScopeOrganization:
		return r.Owner == e.OrganizationID
	case secrets.ScopeProject:
		return e.ProjectID != "" && r.Owner == e.ProjectID
	case secrets.ScopeUser:
		return r.Owner == e.UserID
	}
	return false
}

// Store keeps environments and secrets in one bbolt file in the data
// directory, secret values sealed under the key file beside it. It is safe
// for concurrent use.
type Store struct {
	db   *bolt.DB
	aead cipher.AEAD
	now  func() time.Time
}

// OpenStore opens the store in dir, creating dir (0700), the key file and the
// database (both 0600) on first use. It fails after a second when another
// process holds the database, with an error saying so and naming the address
// that server serves (see heldError).
func OpenStore(dir string) (*Store, error) {
	root, err := openDataDir(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	// A new key for an existing database would seal new values under it and
	// leave every old one unreadable: refuse instead.
	if _, err := root.Lstat(KeyFile); errors.Is(err, fs.ErrNotExist) {
		if _, err := root.Lstat(DBFile); err == nil {
			return nil, fmt.Errorf("%s exists but %s is missing: its values cannot be opened; restore the key or start on a new data dir", filepath.Join(dir, DBFile), filepath.Join(dir, KeyFile))
		}
	}
	key, err := loadKey(root)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	path := filepath.Join(dir, DBFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, heldError(dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSecrets, bucketEnvs, bucketTokens} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketOwners) != nil {
			return nil
		}
		// A database from before the index: build it once.
		idx, err := tx.CreateBucket(bucketOwners)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketSecrets).ForEach(func(k, v []byte) error {
			var st storedSecret
			if err := json.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("secret %s: decode: %w", k, err)
			}
			return idx.Put(ownerKey(st.Record), ownerEntry(st.Record))
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return &Store{db: db, aead: aead, now: func() time.Time { return time.Now().UTC() }}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func (s *Store) seal(id string, value []byte) []byte {
	nonce, err := randomBytes(s.aead.NonceSize())
	if err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return s.aead.Seal(nonce, nonce, value, []byte(id))
}

func (s *Store) open(st storedSecret) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(st.Sealed) < n {
		return nil, fmt.Errorf("secret %s: sealed value is truncated", st.ID)
	}
	v, err := s.aead.Open(nil, st.Sealed[:n], st.Sealed[n:], []byte(st.ID))
	if err != nil {
		return nil, fmt.Errorf("secret %s: open sealed value: %w (wrong key file?)", st.ID, err)
	}
	return v, nil
}

// validate checks a secret the store is asked to keep: the domain's rules,
// plus a scope the devserver keeps (organization, project or user) and an
// owner.
func validate(r Record, value []byte) error {
	sec := r.Secret()
	sec.Value = value
	switch r.Scope {
	case secrets.ScopeOrganization, secrets.ScopeProject, secrets.ScopeUser, secrets.ScopeServiceAccount:
	default:
		return &secrets.Error{ID: r.ID, Name: r.Name, Field: "scope", Reason: "must be organization, project, user or service account"}
	}
	if r.Owner == "" {
		return &secrets.Error{ID: r.ID, Name: r.Name, Field: "scope", Reason: "names no owner id"}
	}
	if strings.IndexByte(r.Owner, 0) >= 0 {
		return &secrets.Error{ID: r.ID, Name: r.Name, Field: "scope", Reason: "owner id contains a NUL byte"}
	}
	if r.Mount.Kind == secrets.MountNone {
		return &secrets.Error{ID: r.ID, Name: r.Name, Field: "mount", Reason: "is missing"}
	}
	if r.Name == "" {
		// A label, any text; but ListSecrets and the CLI find secrets by it.
		return &secrets.Error{ID: r.ID, Field: "name", Reason: "is empty"}
	}
	if err := secrets.ValidateMeta(sec); err != nil {
		return err
	}
	return secrets.ValidateValue(sec, secrets.Limits{})
}

// CreateSecret stores a new secret with r's name, scope, owner and mount and
// the given value; it assigns the id, session and times and returns the
// stored record. It returns a *secrets.Error for an invalid secret, and
// ErrExists when the owner already has a secret of that name or one that
// targets the same mount.
func (s *Store) CreateSecret(r Record, value []byte) (Record, error) {
	r.ID, r.Session = newID(), newID()
	r.CreatedAt = s.now()
	r.UpdatedAt = r.CreatedAt
	if err := validate(r, value); err != nil {
		var se *secrets.Error
		if errors.As(err, &se) {
			se.ID = "" // the id was never given out
		}
		return Record{}, err
	}
	key, _ := r.Mount.Key()
	// Batch: many secrets created at once (benchmarks seeding thousands)
	// share a commit; the function only reads and puts, so it may run again.
	err := s.db.Batch(func(tx *bolt.Tx) error {
		err := ownedNames(tx, r.Scope, r.Owner, func(id, name, mountKey string) error {
			if name == r.Name {
				return fmt.Errorf("name: %s %s already has a secret named %s (id %s): %w", r.Scope, r.Owner, r.Name, id, ErrExists)
			}
			if mountKey != "" && mountKey == key {
				return fmt.Errorf("mount: secret %s (id %s) of %s %s already targets %s: %w", name, id, r.Scope, r.Owner, r.Mount, ErrExists)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketOwners).Put(ownerKey(r), ownerEntry(r)); err != nil {
			return err
		}
		return putSecret(tx.Bucket(bucketSecrets), storedSecret{Record: r, Sealed: s.seal(r.ID, value)})
	})
	if err != nil {
		return Record{}, err
	}
	return r, nil
}

func putSecret(b *bolt.Bucket, st storedSecret) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return b.Put([]byte(st.ID), data)
}

// ownerPrefix is the owners-index prefix of every secret of scope and owner.
func ownerPrefix(scope secrets.Scope, owner string) []byte {
	p := make([]byte, 0, len(owner)+2)
	p = append(p, byte(scope))
	p = append(p, owner...)
	return append(p, 0)
}

// ownerKey is r's key in the owners index.
func ownerKey(r Record) []byte { return append(ownerPrefix(r.Scope, r.Owner), r.ID...) }

// owned calls fn with each secret of scope and owner, in id order; an error
// from fn ends the walk and is returned.
func owned(tx *bolt.Tx, scope secrets.Scope, owner string, fn func(storedSecret) error) error {
	p := ownerPrefix(scope, owner)
	c := tx.Bucket(bucketOwners).Cursor()
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		st, err := getSecret(tx, string(k[len(p):]))
		if err != nil {
			return err
		}
		if err := fn(st); err != nil {
			return err
		}
	}
	return nil
}

// ownerEntry is r's value in the owners index: its name and mount key,
// NUL-separated (neither holds a NUL), so that creating a secret checks
// them without decoding every secret of the owner.
func ownerEntry(r Record) []byte {
	key, _ := r.Mount.Key()
	return []byte(r.Name + "\x00" + key)
}

// ownedNames calls fn with the id, name and mount key of each secret of
// scope and owner, from the owners index (or from the secret, for an entry
// written before the index held them); an error from fn ends the walk.
func ownedNames(tx *bolt.Tx, scope secrets.Scope, owner string, fn func(id, name, mountKey string) error) error {
	p := ownerPrefix(scope, owner)
	c := tx.Bucket(bucketOwners).Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		id := string(k[len(p):])
		name, key, ok := strings.Cut(string(v), "\x00")
		if !ok {
			st, err := getSecret(tx, id)
			if err != nil {
				return err
			}
			name, key = st.Name, ""
			if k, ok := st.Mount.Key(); ok {
				key = k
			}
		}
		if err := fn(id, name, key); err != nil {
			return err
		}
	}
	return nil
}

// Visible returns the records of every secret env sees — its organization's,
// project's and user's — reading only those through the owners index.
func (s *Store) Visible(env Environment) ([]Record, error) {
	var out []Record
	collect := func(st storedSecret) error { out = append(out, st.Record); return nil }
	err := s.db.View(func(tx *bolt.Tx) error {
		if err := owned(tx, secrets.ScopeOrganization, env.OrganizationID, collect); err != nil {
			return err
		}
		if env.ProjectID != "" {
			if err := owned(tx, secrets.ScopeProject, env.ProjectID, collect); err != nil {
				return err
			}
		}
		return owned(tx, secrets.ScopeUser, env.UserID, collect)
	})
	return out, err
}

func getSecret(tx *bolt.Tx, id string) (storedSecret, error) {
	var st storedSecret
	v := tx.Bucket(bucketSecrets).Get([]byte(id))
	if v == nil {
		return st, fmt.Errorf("secret %s: %w", id, ErrNotFound)
	}
	if err := json.Unmarshal(v, &st); err != nil {
		return st, fmt.Errorf("secret %s: decode: %w", id, err)
	}
	return st, nil
}

// UpdateSecretValue replaces the value of secret id and returns its record.
// When the value is the one already stored nothing is written and changed is
// false: the session stays, so no environment refetches. It returns
// ErrNotFound for an unknown id and a *secrets.Error for an invalid value.
func (s *Store) UpdateSecretValue(id string, value []byte) (r Record, changed bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		st, err := getSecret(tx, id)
		if err != nil {
			return err
		}
		r = st.Record
		if err := validate(r, value); err != nil {
			return err
		}
		old, err := s.open(st)
		if err != nil {
			return err
		}
		if bytes.Equal(old, value) {
			return nil
		}
		changed = true
		r.Session = newID()
		r.UpdatedAt = s.now()
		return putSecret(tx.Bucket(bucketSecrets), storedSecret{Record: r, Sealed: s.seal(r.ID, value)})
	})
	if err != nil {
		return Record{}, false, err
	}
	return r, changed, nil
}

// DeleteSecret removes secret id and returns what it was. It returns
// ErrNotFound for an unknown id.
func (s *Store) DeleteSecret(id string) (r Record, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		st, err := getSecret(tx, id)
		if err != nil {
			return err
		}
		r = st.Record
		if err := tx.Bucket(bucketOwners).Delete(ownerKey(r)); err != nil {
			return err
		}
		return tx.Bucket(bucketSecrets).Delete([]byte(id))
	})
	return r, err
}

// Secrets returns the records for which keep returns true (all of them when
// keep is nil), sorted by id. Values are not opened.
func (s *Store) Secrets(keep func(Record) bool) ([]Record, error) {
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSecrets).ForEach(func(k, v []byte) error {
			var st storedSecret
			if err := json.Unmarshal(v, &st); err != nil {
				return fmt.Errorf("secret %s: decode: %w", k, err)
			}
			if keep == nil || keep(st.Record) {
				out = append(out, st.Record)
			}
			return nil
		})
	})
	return out, err
}

// SecretValue returns the record and plaintext value of secret id, or
// ErrNotFound.
func (s *Store) SecretValue(id string) (Record, []byte, error) {
	var st storedSecret
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		st, err = getSecret(tx, id)
		return err
	})
	if err != nil {
		return Record{}, nil, err
	}
	v, err := s.open(st)
	return st.Record, v, err
}

// CreateEnvironment stores a new environment of an organization, a project
// (optional: "" means none) and a user, and returns it with its bearer token,
// which is kept only as a SHA-256 hash.
func (s *Store) CreateEnvironment(org, project, user string) (Environment, string, error) {
	if org == "" {
		return Environment{}, "", errorf(controlplane.CodeInvalidArgument, "organizationId: is empty")
	}
	if user == "" {
		return Environment{}, "", errorf(controlplane.CodeInvalidArgument, "userId: is empty")
	}
	env := Environment{ID: newID(), OrganizationID: org, ProjectID: project, UserID: user, CreatedAt: s.now()}
	token := randomHex(32)
	sum := sha256.Sum256([]byte(token))
	// Batch: many environments created at once (benchmarks, tests) share
	// one commit. The function may run twice; its puts are idempotent.
	err := s.db.Batch(func(tx *bolt.Tx) error {
		data, err := json.Marshal(env)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketEnvs).Put([]byte(env.ID), data); err != nil {
			return err
		}
		return tx.Bucket(bucketTokens).Put(sum[:], []byte(env.ID))
	})
	if err != nil {
		return Environment{}, "", fmt.Errorf("store environment: %w", err)
	}
	return env, token, nil
}

// EnvironmentByToken returns the environment whose token is token, or
// ErrNotFound.
func (s *Store) EnvironmentByToken(token string) (Environment, error) {
	sum := sha256.Sum256([]byte(token))
	var env Environment
	err := s.db.View(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketTokens).Get(sum[:])
		if id == nil {
			return fmt.Errorf("token: %w", ErrNotFound)
		}
		v := tx.Bucket(bucketEnvs).Get(id)
		if v == nil {
			return fmt.Errorf("environment %s: %w", id, ErrNotFound)
		}
		return json.Unmarshal(v, &env)
	})
	return env, err
}

// EnvironmentsSeeing returns the ids of the environments to which r is
// visible; none when no environment is.
func (s *Store) EnvironmentsSeeing(r Record) ([]string, error) {
	var ids []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketEnvs).ForEach(func(k, v []byte) error {
			var env Environment
			if err := json.Unmarshal(v, &env); err != nil {
				return fmt.Errorf("environment %s: decode: %w", k, err)
			}
			if env.Sees(r) {
				ids = append(ids, env.ID)
			}
			return nil
		})
	})
	return ids, err
}

// heldError is OpenStore's error when another process holds dir's database
// (bbolt's file lock timed out, err): it says so and, when dir's address file
// names one, which address that server serves.
func heldError(dir string, err error) error {
	if addr, aerr := ReadAddress(dir); aerr == nil && addr != "" {
		return fmt.Errorf("another secrets-devserver holds the data dir %s (it serves http://%s): %w", dir, addr, err)
	}
	return fmt.Errorf("another process holds the data dir %s (its %s is locked): %w", dir, DBFile, err)
}

package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"

	"github.com/portlama/portlama/internal/store"
	"github.com/portlama/portlama/internal/validate"
)

// DefaultBcryptCost is the bcrypt cost for new password hashes (docs/api.md, "Users and identity").
// Measured on an AMD EPYC core (Go 1.26, x/crypto v0.59.0): cost 10 ≈ 59 ms,
// 11 ≈ 115 ms, 12 ≈ 235 ms, 13 ≈ 477 ms CPU per hash or comparison, with
// about 5 KiB allocated per call and 2.5 MiB peak RSS for a whole measuring
// process: memory is no concern on a 512 MB relay, CPU is. At cost 12 a login
// costs a quarter of a second of one core, and the auth server runs at most
// NumCPU/2 (at least 1) comparisons at a time. See BenchmarkBcrypt.
const DefaultBcryptCost = 12

// Password length limits (docs/api.md, "Users and identity"). bcrypt itself only reads 72 bytes.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 128
)

// AdminsGroup is the group that every access rule admits.
const AdminsGroup = "admins"

// Errors returned by the users-file helpers.
var (
	ErrUserExists   = errors.New("username already exists")
	ErrUserNotFound = errors.New("user not found")
	ErrLastUser     = errors.New("cannot delete the last user")
	// ErrPasswordHash wraps a failure to hash a password (HashPassword).
	ErrPasswordHash = errors.New("hash password")
)

// User is one entry of the users file, in Authelia's file-backend format.
type User struct {
	DisplayName string   `yaml:"displayname"`
	Email       string   `yaml:"email"`
	Password    string   `yaml:"password"`
	Groups      []string `yaml:"groups"`
	// Disabled is Authelia's switch to refuse a user without deleting it.
	Disabled bool `yaml:"disabled,omitempty"`
}

// UsersFile is the whole users file: `users:` mapping usernames to entries.
type UsersFile struct {
	Users map[string]User `yaml:"users"`
}

// UserInfo is a user without the password hash, as the panel lists it.
type UserInfo struct {
	Username    string   `json:"username"`
	DisplayName string   `json:"displayname"`
	Email       string   `json:"email"`
	Groups      []string `json:"groups"`
}

// ParseUsersFile decodes a users file. Unknown keys are refused, so a typo
// or an Authelia attribute this server does not implement never silently
// changes who may log in; an empty document yields no users.
func ParseUsersFile(data []byte) (UsersFile, error) {
	var f UsersFile
	if len(bytes.TrimSpace(data)) == 0 {
		f.Users = map[string]User{}
		return f, nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return UsersFile{}, fmt.Errorf("parse users file: %w", err)
	}
	if f.Users == nil {
		f.Users = map[string]User{}
	}
	return f, nil
}

// MarshalUsersFile encodes f in the users-file format with users sorted by name.
func MarshalUsersFile(f UsersFile) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	users := f.Users
	if users == nil {
		users = map[string]User{}
	}
	for name, u := range users {
		if u.Groups == nil {
			u.Groups = []string{}
			users[name] = u
		}
	}
	if err := enc.Encode(UsersFile{Users: users}); err != nil {
		return nil, fmt.Errorf("encode users file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode users file: %w", err)
	}
	return buf.Bytes(), nil
}

// ValidateUser checks one entry: username, display name, e-mail, groups
// and that password is a bcrypt hash ($2a$, $2b$ or $2y$).
func ValidateUser(username string, u User) error {
	if err := validate.Username(username); err != nil {
		return err
	}
	if err := validate.DisplayName(u.DisplayName); err != nil {
		return err
	}
	if err := validate.Email(u.Email); err != nil {
		return err
	}
	for _, g := range u.Groups {
		if err := validate.GroupName(g); err != nil {
			return err
		}
	}
	if !isBcryptHash(u.Password) {
		return errors.New("password must be a bcrypt hash ($2a$, $2b$ or $2y$)")
	}
	return nil
}

// ValidatePassword checks a plain password's length (8–128 characters).
func ValidatePassword(pw string) error {
	n := len([]rune(pw))
	if n < MinPasswordLen || n > MaxPasswordLen {
		return fmt.Errorf("password must be %d–%d characters", MinPasswordLen, MaxPasswordLen)
	}
	// bcrypt reads at most 72 bytes; refusing longer passwords is better
	// than silently ignoring their tail (and keeps Authelia's hash format).
	if len(pw) > MaxPasswordBytes {
		return fmt.Errorf("password must be at most %d bytes (%d characters of plain ASCII)", MaxPasswordBytes, MaxPasswordBytes)
	}
	return nil
}

// MaxPasswordBytes is bcrypt's input limit.
const MaxPasswordBytes = 72

func isBcryptHash(h string) bool {
	if len(h) != 60 {
		return false
	}
	if !strings.HasPrefix(h, "$2a$") && !strings.HasPrefix(h, "$2b$") && !strings.HasPrefix(h, "$2y$") {
		return false
	}
	_, err := bcrypt.Cost([]byte(h))
	return err == nil
}

// HashPassword hashes pw with bcrypt at cost (DefaultBcryptCost when 0).
func HashPassword(pw string, cost int) (string, error) {
	if cost == 0 {
		cost = DefaultBcryptCost
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrPasswordHash, err)
	}
	return string(h), nil
}

// UserStore reads and writes the users file for the panel. Every change is a
// locked read-modify-write and the file is replaced atomically (0600), so
// the auth server, which re-reads it on change, never sees a torn file.
type UserStore struct {
	path string
	cost int
	mu   sync.Mutex
}

// NewUserStore returns a store for the users file at path; new passwords are
// hashed with cost (DefaultBcryptCost when 0).
func NewUserStore(path string, cost int) *UserStore {
	if cost == 0 {
		cost = DefaultBcryptCost
	}
	return &UserStore{path: path, cost: cost}
}

// Path returns the users file's path.
func (s *UserStore) Path() string { return s.path }

// Load reads the users file. A missing file yields no users.
func (s *UserStore) Load() (UsersFile, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return UsersFile{Users: map[string]User{}}, nil
	}
	if err != nil {
		return UsersFile{}, fmt.Errorf("read users file: %w", err)
	}
	return ParseUsersFile(data)
}

// List returns every user without password hashes, sorted by username.
func (s *UserStore) List() ([]UserInfo, error) {
	f, err := s.Load()
	if err != nil {
		return nil, err
	}
	out := make([]UserInfo, 0, len(f.Users))
	for name, u := range f.Users {
		out = append(out, info(name, u))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out, nil
}

// Get returns one user without the password hash, or ErrUserNotFound.
func (s *UserStore) Get(username string) (UserInfo, error) {
	f, err := s.Load()
	if err != nil {
		return UserInfo{}, err
	}
	u, ok := f.Users[username]
	if !ok {
		return UserInfo{}, ErrUserNotFound
	}
	return info(username, u), nil
}

func info(name string, u User) UserInfo {
	g := slices.Clone(u.Groups)
	if g == nil {
		g = []string{}
	}
	return UserInfo{Username: name, DisplayName: u.DisplayName, Email: u.Email, Groups: g}
}

// NewUser is what the panel supplies to create a user.
type NewUser struct {
	Username    string
	DisplayName string
	Email       string
	Password    string // plain text; hashed here
	Groups      []string
}

// Create adds a user, hashing the password. It fails with ErrUserExists when
// the name is taken, or with a validation error.
func (s *UserStore) Create(nu NewUser) (UserInfo, error) {
	if err := ValidatePassword(nu.Password); err != nil {
		return UserInfo{}, err
	}
	if err := validate.Username(nu.Username); err != nil {
		return UserInfo{}, err
	}
	// Hash outside the lock: it is the slow part.
	hash, err := HashPassword(nu.Password, s.cost)
	if err != nil {
		return UserInfo{}, err
	}
	u := User{DisplayName: nu.DisplayName, Email: nu.Email, Password: hash, Groups: slices.Clone(nu.Groups)}
	if u.Groups == nil {
		u.Groups = []string{}
	}
	if err := ValidateUser(nu.Username, u); err != nil {
		return UserInfo{}, err
	}
	err = s.Update(func(f *UsersFile) error {
		if _, ok := f.Users[nu.Username]; ok {
			return ErrUserExists
		}
		f.Users[nu.Username] = u
		return nil
	})
	if err != nil {
		return UserInfo{}, err
	}
	return info(nu.Username, u), nil
}

// UserChange is a partial update; nil fields are left as they are.
type UserChange struct {
	DisplayName *string
	Email       *string
	Password    *string // plain text; hashed here
	Groups      *[]string
}

// Modify applies ch to an existing user (ErrUserNotFound otherwise) and
// returns the result. It reports whether the password changed, in which
// case the caller ends the user's sessions (ManageClient.EndSessions); the
// auth server also refuses sessions made with an older password.
func (s *UserStore) Modify(username string, ch UserChange) (UserInfo, bool, error) {
	var hash string
	if ch.Password != nil {
		if err := ValidatePassword(*ch.Password); err != nil {
			return UserInfo{}, false, err
		}
		h, err := HashPassword(*ch.Password, s.cost)
		if err != nil {
			return UserInfo{}, false, err
		}
		hash = h
	}
	var out User
	err := s.Update(func(f *UsersFile) error {
		u, ok := f.Users[username]
		if !ok {
			return ErrUserNotFound
		}
		if ch.DisplayName != nil {
			u.DisplayName = *ch.DisplayName
		}
		if ch.Email != nil {
			u.Email = *ch.Email
		}
		if ch.Groups != nil {
			u.Groups = slices.Clone(*ch.Groups)
			if u.Groups == nil {
				u.Groups = []string{}
			}
		}
		if hash != "" {
			u.Password = hash
		}
		if err := ValidateUser(username, u); err != nil {
			return err
		}
		f.Users[username] = u
		out = u
		return nil
	})
	if err != nil {
		return UserInfo{}, false, err
	}
	return info(username, out), hash != "", nil
}

// Delete removes a user. It refuses to remove the last one (ErrLastUser).
// The caller also removes the user's TOTP secret and sessions through
// ManageClient.DeleteTOTP.
func (s *UserStore) Delete(username string) error {
	return s.Update(func(f *UsersFile) error {
		if _, ok := f.Users[username]; !ok {
			return ErrUserNotFound
		}
		if len(f.Users) == 1 {
			return ErrLastUser
		}
		delete(f.Users, username)
		return nil
	})
}

// Update runs fn on the users file under an exclusive lock (in-process and
// flock on "<path>.lock") and writes the result atomically with mode 0600
// if fn returns nil.
func (s *UserStore) Update(fn func(*UsersFile) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	lf, err := os.OpenFile(s.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open users lock file: %w", err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock users file: %w", err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)

	f, err := s.Load()
	if err != nil {
		return err
	}
	if err := fn(&f); err != nil {
		return err
	}
	data, err := MarshalUsersFile(f)
	if err != nil {
		return err
	}
	if err := store.WriteFileAtomic(s.path, data, 0o600); err != nil {
		return fmt.Errorf("write users file: %w", err)
	}
	return nil
}

package auth

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestUserStore(t *testing.T) {
	dir := t.TempDir()
	us := NewUserStore(filepath.Join(dir, UsersFileName), bcrypt.MinCost)

	if list, err := us.List(); err != nil || len(list) != 0 {
		t.Fatalf("empty store: %v %v", list, err)
	}
	admin, err := us.Create(NewUser{Username: "admin", DisplayName: "Admin", Email: "admin@portlama.local", Password: "password1", Groups: []string{"admins"}})
	if err != nil {
		t.Fatal(err)
	}
	if admin.Username != "admin" || admin.Groups[0] != "admins" {
		t.Fatalf("created %+v", admin)
	}
	if _, err := us.Create(NewUser{Username: "admin", DisplayName: "X", Email: "x@example.com", Password: "password1"}); !errors.Is(err, ErrUserExists) {
		t.Fatalf("duplicate: %v", err)
	}
	for name, nu := range map[string]NewUser{
		"short password":  {Username: "bob", DisplayName: "B", Email: "b@example.com", Password: "short"},
		"long password":   {Username: "bob", DisplayName: "B", Email: "b@example.com", Password: strings.Repeat("x", 129)},
		"bad username":    {Username: "Bob", DisplayName: "B", Email: "b@example.com", Password: "password1"},
		"bad email":       {Username: "bob", DisplayName: "B", Email: "nope", Password: "password1"},
		"bad group":       {Username: "bob", DisplayName: "B", Email: "b@example.com", Password: "password1", Groups: []string{"a,b"}},
		"control in name": {Username: "bob", DisplayName: "B\n", Email: "b@example.com", Password: "password1"},
	} {
		if _, err := us.Create(nu); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := us.Create(NewUser{Username: "bob", DisplayName: "Bob", Email: "bob@example.com", Password: "password2"}); err != nil {
		t.Fatal(err)
	}

	// The file is Authelia's format, 0600, with a bcrypt hash.
	data, err := os.ReadFile(us.Path())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"users:\n", "  admin:\n", "    displayname: Admin\n", "    email: admin@portlama.local\n", "    password: $2a$", "    groups:\n", "      - admins\n"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("users file lacks %q:\n%s", want, data)
		}
	}
	if strings.Contains(string(data), "password1") {
		t.Fatal("plain password in users file")
	}
	if fi, _ := os.Stat(us.Path()); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}

	name, pw := "Bobby", "password3"
	got, changed, err := us.Modify("bob", UserChange{DisplayName: &name, Password: &pw})
	if err != nil || !changed || got.DisplayName != "Bobby" {
		t.Fatalf("modify: %+v %v %v", got, changed, err)
	}
	f, _ := us.Load()
	if bcrypt.CompareHashAndPassword([]byte(f.Users["bob"].Password), []byte("password3")) != nil {
		t.Fatal("new password not stored")
	}
	if _, _, err := us.Modify("nobody", UserChange{DisplayName: &name}); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("modify unknown: %v", err)
	}
	bad := "not an email"
	if _, _, err := us.Modify("bob", UserChange{Email: &bad}); err == nil {
		t.Fatal("invalid e-mail accepted")
	}
	if err := us.Delete("bob"); err != nil {
		t.Fatal(err)
	}
	if err := us.Delete("bob"); !errors.Is(err, ErrUserNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if err := us.Delete("admin"); !errors.Is(err, ErrLastUser) {
		t.Fatalf("delete last: %v", err)
	}
	list, _ := us.List()
	if len(list) != 1 || list[0].Username != "admin" {
		t.Fatalf("list %+v", list)
	}
}

func TestUserStoreConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, UsersFileName)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Separate stores share only the flock, as two processes would.
			us := NewUserStore(path, bcrypt.MinCost)
			name := "user" + string(rune('a'+i))
			if _, err := us.Create(NewUser{Username: name, DisplayName: name, Email: name + "@example.com", Password: "password1"}); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	list, err := NewUserStore(path, 0).List()
	if err != nil || len(list) != 8 {
		t.Fatalf("lost updates: %d users, %v", len(list), err)
	}
}

func TestParseUsersFileAcceptsAutheliaHashes(t *testing.T) {
	h, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		hash := prefix + string(h[4:])
		doc := "users:\n  alice:\n    displayname: Alice\n    email: alice@example.com\n    password: " + hash + "\n    groups: []\n"
		f, err := ParseUsersFile([]byte(doc))
		if err != nil {
			t.Fatalf("%s: %v", prefix, err)
		}
		if err := ValidateUser("alice", f.Users["alice"]); err != nil {
			t.Fatalf("%s: %v", prefix, err)
		}
	}
	for _, bad := range []string{"plain", "$1$abc", "$argon2id$v=19$m=65536,t=3,p=4$abc"} {
		if ValidateUser("alice", User{DisplayName: "A", Email: "a@example.com", Password: bad}) == nil {
			t.Errorf("hash %q accepted", bad)
		}
	}
	if _, err := ParseUsersFile([]byte("users:\n  a:\n    passwd: x\n")); err == nil {
		t.Error("unknown key accepted")
	}
}

func TestCheckTOTP(t *testing.T) {
	secret, err := NewTOTPSecret()
	if err != nil || len(secret) != 32 {
		t.Fatalf("secret %q %v", secret, err)
	}
	now := time.Unix(1_800_000_015, 0)
	for d, want := range map[time.Duration]bool{-60 * time.Second: false, -30 * time.Second: true, 0: true, 30 * time.Second: true, 60 * time.Second: false} {
		code, _ := codeAt(secret, now.Add(d))
		step, ok := CheckTOTP(secret, code, now)
		if ok != want {
			// A code of another step can collide by chance (1e-6); ignore that.
			if c2, _ := codeAt(secret, now); c2 != code {
				t.Errorf("offset %v: ok = %v, want %v", d, ok, want)
			}
		}
		if ok && step != now.Add(d).Unix()/30 && d != 0 {
			if c2, _ := codeAt(secret, now); c2 != code {
				t.Errorf("offset %v: step %d", d, step)
			}
		}
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef", " 12345"} {
		if _, ok := CheckTOTP(secret, bad, now); ok {
			t.Errorf("code %q accepted", bad)
		}
	}
	if got := TOTPURI("Portlama Panel", "admin", "ABC"); got != "otpauth://totp/Portlama%20Panel:admin?secret=ABC&issuer=Portlama%20Panel&algorithm=SHA1&digits=6&period=30" {
		t.Errorf("panel URI %q", got)
	}
}

func TestUnknownUserCostsABcrypt(t *testing.T) {
	// Unknown users are compared against a dummy hash of the same cost, so
	// a failed login takes about as long whether or not the user exists.
	dir := t.TempDir()
	us := NewUserStore(UsersFilePath(dir), 8)
	if _, err := us.Create(NewUser{Username: "alice", DisplayName: "A", Email: "a@example.com", Password: "password1"}); err != nil {
		t.Fatal(err)
	}
	srv, err := NewServer(Config{Dir: dir, Domain: testDomain, BcryptCost: 8})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := bcrypt.Cost(srv.dummy); c != 8 {
		t.Fatalf("dummy cost %d", c)
	}
	measure := func(user string) time.Duration {
		best := time.Hour
		for i := 0; i < 5; i++ {
			start := time.Now()
			srv.checkPassword(t.Context(), user, "wrong-password")
			if d := time.Since(start); d < best {
				best = d
			}
		}
		return best
	}
	known, unknown := measure("alice"), measure("nobody")
	if unknown < known/3 {
		t.Fatalf("unknown user %v vs known %v: no bcrypt for unknown users", unknown, known)
	}
}

func TestWriteAccessRulesValidates(t *testing.T) {
	dir := t.TempDir()
	for name, r := range map[string]AccessRule{
		"empty host":   {Host: ""},
		"upper host":   {Host: "App.demo.localhost"},
		"host w/ port": {Host: "app.demo.localhost:443"},
		"bad user":     {Host: "app.demo.localhost", Users: []string{"Bad User"}},
		"bad group":    {Host: "app.demo.localhost", Groups: []string{"a,b"}},
	} {
		if err := WriteAccessRules(dir, AccessRules{Rules: []AccessRule{r}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	dup := []AccessRule{{Host: "a.demo.localhost"}, {Host: "a.demo.localhost"}}
	if err := WriteAccessRules(dir, AccessRules{Rules: dup}); err == nil {
		t.Error("duplicate host accepted")
	}
	if err := WriteAccessRules(dir, AccessRules{Rules: []AccessRule{{Host: "a.demo.localhost", Users: []string{"alice"}}}}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(RulesFilePath(dir))
	if want := `"groups": []`; !strings.Contains(string(data), want) {
		t.Fatalf("rules file %s lacks %s", data, want)
	}
	if fi, _ := os.Stat(RulesFilePath(dir)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
}

package hostnames

import (
	"errors"
	"testing"
)

func TestLabelUnder(t *testing.T) {
	for fqdn, want := range map[string]string{
		"app.example.com": "app", "a.b.example.com": "", "example.com": "", "xexample.com": "",
		"app.example.org": "", ".example.com": "",
	} {
		if got := LabelUnder(fqdn, "example.com"); got != want {
			t.Errorf("LabelUnder(%q) = %q, want %q", fqdn, got, want)
		}
	}
}

func TestReserveSeesStoredAndPendingNames(t *testing.T) {
	r := New()
	r.AddSource(func() ([]Name, error) { return []Name{{Kind: Tunnel, Label: "app", FQDN: "app.example.com"}}, nil })
	taken := errors.New("taken")
	check := func(n Name) func([]Name) error {
		return func(held []Name) error {
			if _, clash := Clashes(held, n); clash {
				return taken
			}
			return nil
		}
	}
	if _, err := r.Reserve(Name{Label: "app"}, check(Name{Label: "app"})); err != taken {
		t.Fatalf("a stored name was reserved again: %v", err)
	}
	blog := Name{Kind: Site, Label: "blog", FQDN: "blog.example.com", SiteName: "blog"}
	h, err := r.Reserve(blog, check(blog))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Reserve(Name{FQDN: "blog.example.com"}, check(Name{FQDN: "blog.example.com"})); err != taken {
		t.Fatalf("a pending name was reserved again: %v", err)
	}
	h.Release()
	h.Release()
	if _, err := r.Reserve(blog, check(blog)); err != nil {
		t.Fatalf("a released name stays taken: %v", err)
	}
	// A source that cannot be read fails the reservation (fails closed).
	r.AddSource(func() ([]Name, error) { return nil, errors.New("sites.json: parse error") })
	if _, err := r.Reserve(Name{Label: "new"}, check(Name{Label: "new"})); err == nil {
		t.Fatal("reserved with an unreadable source")
	}
}

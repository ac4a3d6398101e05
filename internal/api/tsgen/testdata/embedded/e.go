package e

type Base struct{ A string }

type Outer struct {
	Base
}

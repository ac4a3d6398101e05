package ok

import "encoding/json"

// Color is a color.
type Color string

const (
	Red  Color = "red" // warm
	Blue Color = "blue"
)

// Limit is a number.
const Limit = 5

// Thing is a thing.
type Thing struct {
	Name    string            `json:"name"`
	Hidden  int               `json:"-"`
	Maybe   *string           `json:"maybe"`
	Absent  *int              `json:"absent,omitempty"`
	Tags    []string          `json:"tags,omitempty"`
	Color   Color             `json:"color"`
	Extra   json.RawMessage   `json:"extra"`
	Labels  map[string]uint64 `json:"labels"`
	Path    []any             `json:"path"`
	private int
}

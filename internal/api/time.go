package api

import "time"

// TimeLayout is the API's timestamp format: ISO 8601 in UTC with
// milliseconds, e.g. 2026-01-31T09:15:00.000Z.
const TimeLayout = "2006-01-02T15:04:05.000Z"

// FormatTime formats t in TimeLayout (converted to UTC).
func FormatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

// ParseTime parses a timestamp in TimeLayout.
func ParseTime(s string) (time.Time, error) { return time.Parse(TimeLayout, s) }

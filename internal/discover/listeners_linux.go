package discover

import "context"

func systemListeners(context.Context) ([]Listener, error) { return procListeners("/proc") }

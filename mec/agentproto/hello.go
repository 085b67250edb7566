package agentproto

import (
	"fmt"
	"log/slog"
)

// LogValue logs a hello without its token.
func (h Hello) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("hostId", h.HostID),
		slog.String("siteId", h.SiteID),
		slog.String("agentVersion", h.AgentVersion),
		slog.Any("capacity", h.Capacity),
		slog.Any("labels", h.Labels),
		slog.Int64("generation", h.Generation),
		slog.Bool("token", h.Token != ""),
	)
}

// String prints a hello without its token, for %v and %+v.
func (h Hello) String() string {
	return fmt.Sprintf("%+v", redacted(h))
}

// GoString prints a hello without its token, for %#v.
func (h Hello) GoString() string {
	return fmt.Sprintf("%#v", redacted(h))
}

// helloFields is Hello without its methods, so that printing it does not
// recurse into String.
type helloFields Hello

func redacted(h Hello) helloFields {
	if h.Token != "" {
		h.Token = "REDACTED"
	}
	return helloFields(h)
}

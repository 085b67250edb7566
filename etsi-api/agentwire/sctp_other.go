//go:build !linux

package agentwire

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
)

// ListenSCTP is only implemented on Linux.
func ListenSCTP(addrs []netip.Addr, port int, opts ServerOptions) (Listener, error) {
	return nil, fmt.Errorf("listen sctp on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

// DialSCTP is only implemented on Linux.
func DialSCTP(ctx context.Context, rawURL string, localAddrs []netip.Addr, opts DialOptions) (Conn, error) {
	return nil, fmt.Errorf("dial sctp on %s: %w", runtime.GOOS, errors.ErrUnsupported)
}

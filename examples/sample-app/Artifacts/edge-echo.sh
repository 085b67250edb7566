#!/bin/sh
# edge-echo: the software image of mecorch's example MEC app. It sends back
# whatever a client sends on TCP and UDP port ${ECHO_PORT:-7}.
set -eu
port="${ECHO_PORT:-7}"

if command -v socat >/dev/null 2>&1; then
	socat -T 30 UDP-RECVFROM:"$port",fork EXEC:cat &
	exec socat TCP-LISTEN:"$port",reuseaddr,fork EXEC:cat
fi

# Without socat: busybox nc, TCP only, one client at a time.
while true; do
	busybox nc -l -p "$port" -e cat || sleep 1
done

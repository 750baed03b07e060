"""The postStart hook: a shell script that tells a starting node its peers.

A failing or hanging postStart hook kills or stalls the container, so the
command returns 0 at once and does the work in the background, bounded in
time. The script is POSIX sh (dash, busybox) and uses only shell builtins plus
`date`, `sleep` and one HTTP client. It reads `$STELLAR_PEERS_FILE` (the
mounted ConfigMap) line by line and accepts only `host:port` with a host of
`[A-Za-z0-9.-]` and a numeric port, so nothing in the file can become shell
code or reach another URL.

The HTTP client is curl, else wget (both in the official image, both reach
the admin port directly), else `stellar-core http-command`. The last one has no
port flag: it reads `HTTP_PORT` from its config file (`--conf`, default
`stellar-core.cfg` in the working directory), so the script passes
`--conf "$STELLAR_CORE_CONF"` when that is set. It also always talks to
127.0.0.1, has no timeout and prints the response headers before the body.

A starting node accepts connections and may answer nothing for a long time, so
every request is bounded (curl `--max-time`, wget `-t 1 -T`, a watchdog that
kills `http-command`). The node is ready once `info`'s `state` is past
`Booting` (v25.2+ answers `{"error": ...}` instead while booting): the state is
read from the JSON, whatever its spacing (jsoncpp writes `"state" : "Synced!"`).
`Connect to:` means the node took the address ("asked"), not that it connected.

Networks: the node reads only its own network's file, `peers-<network>.txt` beside
`$STELLAR_PEERS_FILE`, the network being `$STELLAR_NETWORK` (the pod's
`stellar.org/network` label, injected) else the name of `info.network`'s
passphrase (`pubnet`, `testnet`, else `net-` and 8 hex digits of its sha256, when
`sha256sum` is there). Without that file it falls back to `$STELLAR_PEERS_FILE`
only when no `peers-*.txt` exists at all (a cluster of one unknown network) and
the pod is not labeled: otherwise it sends nothing rather than another network's peers.

`STELLAR_PEERS_ADMIN_HOST` (default 127.0.0.1) points curl/wget elsewhere; it
exists for tests that run a stand-in admin port on another loopback address.
"""

from __future__ import annotations

import functools

from webhook import names
from webhook.core.admin_protocol import NETWORK_NAMES, PAST_BOOTING, bounded_function

MAX_TIMEOUT_SECONDS = names.HOOK_MAX_TIMEOUT_SECONDS
CONNECT_ATTEMPTS = 5
ASK_SECONDS = 3  # one admin request; a starting node accepts and may answer nothing
# `info.state` values past `Booting` (admin_protocol.PAST_BOOTING), as a sh case pattern
READY_PATTERN = "|".join(f"'{state}'" for state in sorted(PAST_BOOTING))

# `case` arms naming the well-known passphrases (none holds a quote)
KNOWN_NETWORKS = "\n    ".join(f"'{p}') net={n} ;;" for p, n in sorted(NETWORK_NAMES.items()))

_SCRIPT = """\
(
deadline=$(( $(date +%s) + {timeout} ))
host=${{STELLAR_PEERS_ADMIN_HOST:-127.0.0.1}}
file=${{STELLAR_PEERS_FILE:-{peers_file}}}
{bounded}
ask() {{
  if command -v curl >/dev/null 2>&1; then curl -s --max-time {ask_seconds} "http://$host:{port}/$1"
  elif command -v wget >/dev/null 2>&1; then wget -q -t 1 -T {ask_seconds} -O - "http://$host:{port}/$1"
  else bounded stellar-core http-command ${{STELLAR_CORE_CONF:+--conf "$STELLAR_CORE_CONF"}} "$1"
  fi
}}
state() {{ field state "$1"; }}
field() {{
  s=${{2#*'"'"$1"'"'}}
  [ "$s" != "$2" ] || return 0
  s=${{s#"${{s%%[!$blank]*}}"}}
  case "$s" in :*) s=${{s#:}} ;; *) return 0 ;; esac
  s=${{s#"${{s%%[!$blank]*}}"}}
  case "$s" in '"'*) s=${{s#'"'}}; printf '%s' "${{s%%'"'*}}" ;; esac
}}
blank=$(printf ' \\t\\r\\n_'); blank=${{blank%_}}
in_time() {{ [ "$(date +%s)" -lt "$deadline" ]; }}
until body=$(ask info); case "$(state "$body")" in {ready}) true ;; *) false ;; esac; do
  in_time || exit 0
  sleep 1
done
net=${{STELLAR_NETWORK:-}}
case "$net" in *[!a-z0-9-]*) net= ;; esac
labeled=$net
if [ -z "$net" ]; then
  pass=$(field network "$body")
  case "$pass" in
    {known_networks}
    "") ;;
    *) h=$(printf '%s' "$pass" | sha256sum 2>/dev/null) && net=net-$(printf '%.8s' "$h") ;;
  esac
fi
dir=${{file%/*}}
if [ -n "$net" ] && [ -r "$dir/peers-$net.txt" ]; then
  file=$dir/peers-$net.txt
else
  [ -z "$labeled" ] || exit 0
  for f in "$dir"/peers-*.txt; do [ ! -e "$f" ] || exit 0; done
fi
[ -r "$file" ] || exit 0
pending=
while IFS= read -r line || [ -n "$line" ]; do
  case "$line" in *:*) ;; *) continue ;; esac
  h=${{line%:*}} p=${{line#*:}}
  case "$h" in ""|*[!A-Za-z0-9.-]*) continue ;; esac
  case "$p" in ""|*[!0-9]*) continue ;; esac
  [ "$h" = "${{STELLAR_POD_IP:-}}" ] || pending="$pending $h:$p"
done < "$file"
tries=0
while [ -n "$pending" ] && [ "$tries" -lt {attempts} ] && in_time; do
  left=
  for peer in $pending; do
    case "$(ask "connect?peer=${{peer%:*}}&port=${{peer#*:}}")" in
      *"Connect to: "*) ;;
      *) left="$left $peer" ;;
    esac
  done
  pending=$left tries=$((tries + 1))
  [ -z "$pending" ] || sleep 1
done
) </dev/null >/dev/null 2>&1 &
exit 0
"""


def _checked_int(value: int, *, name: str, low: int, high: int) -> int:
    """Only plain integers in range ever reach the script text."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def poststart_command(*, http_port: int, timeout_seconds: int) -> list[str]:
    """The exec command of the injected postStart hook (a fresh list each call)."""
    port = _checked_int(http_port, name="http_port", low=1, high=65535)
    timeout = _checked_int(timeout_seconds, name="timeout_seconds", low=1, high=MAX_TIMEOUT_SECONDS)
    return ["/bin/sh", "-c", _script(port, timeout)]


@functools.lru_cache(maxsize=64)
def _script(port: int, timeout: int) -> str:
    """Formatting the script costs more than the rest of an admission: done once per pair."""
    return _SCRIPT.format(
        port=port,
        timeout=timeout,
        attempts=CONNECT_ATTEMPTS,
        ask_seconds=ASK_SECONDS,
        bounded=bounded_function(ASK_SECONDS),
        ready=READY_PATTERN,
        peers_file=names.PEERS_FILE,
        known_networks=KNOWN_NETWORKS,
    )

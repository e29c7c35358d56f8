/**
 * The host installer served at GET /install.sh: a POSIX sh script that checks
 * the server's TUF root against a fingerprint obtained out of band, installs
 * the livegraft-agent package from this server, and enrols the host with
 * that root pinned.
 */

/** What the script is rendered with: the server's own URL and its current root version. */
export interface InstallScriptParams {
  server: string;
  rootVersion: number;
}

const TEMPLATE = `#!/bin/sh
# Livegraft agent installer, served by a Livegraft server at /install.sh:
#
#   curl -fsSL https://SERVER/install.sh | sh -s -- --key-file FILE --root-sha256 HEX
#
# Checks the server's TUF root against HEX (from the server's administrator:
# "livegraft keys fingerprint", or the server's start-up log) before anything
# is installed or sent, installs the livegraft-agent package from the server,
# enrols this host with "livegraft-agent enroll --root-sha256 HEX --key-file FILE",
# and starts the agent.
set -eu

server='@SERVER@'
root_version='@ROOT_VERSION@'
key_file=''
root_sha256=''
host_name=''

usage() {
	echo 'usage: sh install.sh --key-file FILE --root-sha256 HEX [--server URL] [--hostname NAME]' >&2
	exit 64
}
die() {
	echo "install.sh: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case "$1" in
	--key-file) [ $# -ge 2 ] || usage; key_file=$2; shift 2 ;;
	--root-sha256) [ $# -ge 2 ] || usage; root_sha256=$2; shift 2 ;;
	--server) [ $# -ge 2 ] || usage; server=\${2%/}; shift 2 ;;
	--hostname) [ $# -ge 2 ] || usage; host_name=$2; shift 2 ;;
	-h | --help) usage ;;
	*) echo "install.sh: unknown argument $1" >&2; usage ;;
	esac
done

[ -n "$key_file" ] || die '--key-file FILE is required: the registration key from the server administrator'
[ -n "$root_sha256" ] || die "--root-sha256 HEX is required: the fingerprint of the server's TUF root"
root_sha256=$(printf '%s' "$root_sha256" | tr 'ABCDEF' 'abcdef')
case "$root_sha256" in *[!0-9a-f]*) die '--root-sha256 must be 64 hexadecimal digits' ;; esac
[ \${#root_sha256} -eq 64 ] || die '--root-sha256 must be 64 hexadecimal digits'
[ -r "$key_file" ] || die "cannot read the registration key file $key_file"
[ "$(id -u)" -eq 0 ] || die 'run this as root'
command -v apt-get >/dev/null 2>&1 || die 'this installer needs apt-get (Debian or a derivative)'

fetch() {
	if command -v curl >/dev/null 2>&1; then
		curl -fsSL -o "$2" "$1"
	elif command -v wget >/dev/null 2>&1; then
		wget -q -O "$2" "$1"
	else
		die 'needs curl or wget'
	fi
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# 1. The server's TUF root, checked before anything is installed or sent.
fetch "$server/tuf/metadata/$root_version.root.json" "$tmp/root.json" ||
	die "cannot download the TUF root from $server"
got=$(sha256sum "$tmp/root.json" | cut -d ' ' -f 1)
[ "$got" = "$root_sha256" ] ||
	die "the TUF root of $server has SHA-256 $got, not $root_sha256: refusing to install and enrol"
echo "install.sh: TUF root version $root_version of $server matches $root_sha256"

# 2. The agent package, from the same server.
fetch "$server/install/livegraft-agent.deb" "$tmp/livegraft-agent.deb" ||
	die "cannot download the agent package from $server"
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$tmp/livegraft-agent.deb"

# 3. Enrol pinned to the same fingerprint: the agent checks the root again
#    before it sends the key, and the enrol answer cannot replace it.
set -- --server "$server" --key-file "$key_file" --root-sha256 "$root_sha256"
[ -z "$host_name" ] || set -- "$@" --hostname "$host_name"
livegraft-agent enroll "$@"

# 4. Start the daemon (the boot unit re-applies the cached level at every boot).
if [ -d /run/systemd/system ]; then
	systemctl enable livegraft-agent-boot.service livegraft-agent.service
	systemctl restart livegraft-agent.service
fi
echo 'install.sh: done; "livegraft-agent status" shows what the kernel runs'
`;

/** The script, with the server URL and root version filled in (both validated by the caller). */
export function installScript(p: InstallScriptParams): string {
  if (!/^https?:\/\/[A-Za-z0-9.:[\]_-]+$/.test(p.server)) throw new Error(`unsafe server URL ${p.server}`);
  if (!Number.isInteger(p.rootVersion) || p.rootVersion < 1) throw new Error(`bad root version ${p.rootVersion}`);
  return TEMPLATE.replace('@SERVER@', p.server).replace('@ROOT_VERSION@', String(p.rootVersion));
}

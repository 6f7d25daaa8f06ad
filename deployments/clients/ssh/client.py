"""SSHClient: the connection with its commands, files and tunnels, and installing a public key."""

from .commands import CommandsMixin
from .errors import SSHError
from .files import FilesMixin
from .keys import HostKey
from .tunnel import TunnelsMixin


class SSHClient(CommandsMixin, FilesMixin, TunnelsMixin):
    """One SSH connection to one server, as one user.

    Use as a context manager, or call `connect()` (which returns the server's host key) and
    `close()`. Commands and uploads connect first if that has not happened yet.
    """

    def install_public_key(self, public_key_line: str) -> None:
        """Add a public key to the user's ~/.ssh/authorized_keys, unless it is there already."""
        try:
            key = HostKey.from_line(public_key_line)
        except ValueError as e:
            raise SSHError(
                f"This is not a public key the panel can install: {e}", kind="auth"
            ) from None
        fields = public_key_line.strip().split(None, 2)
        line = " ".join([key.key_type, key.base64, *fields[2:]])
        self.run(
            ["sh", "-c", INSTALL_KEY_SCRIPT, "install-public-key"],
            stdin=line + "\n",
            timeout=max(self.connect_timeout, 30),
        )


# Reads one public key line on stdin. The key is compared on its base64 field alone, so the same
# key with another comment or with options is not added twice. restorecon, as ssh-copy-id does,
# so that SELinux lets sshd read a file created here.
INSTALL_KEY_SCRIPT = r"""
set -eu
umask 077
IFS= read -r line || [ -n "$line" ]
set -f
set -- $line
blob=$2
cd
[ -d .ssh ] || mkdir -m 700 .ssh
file=.ssh/authorized_keys
[ -e "$file" ] || : > "$file"
if ! awk -v blob="$blob" '{ for (i = 1; i <= NF; i++) if ($i == blob) found = 1 }
        END { exit !found }' "$file"; then
    if [ -s "$file" ] && [ -n "$(tail -c 1 "$file")" ]; then
        echo >> "$file"
    fi
    printf '%s\n' "$line" >> "$file"
fi
chmod 600 "$file"
if command -v restorecon > /dev/null 2>&1; then
    restorecon -F .ssh "$file" > /dev/null 2>&1 || true
fi
""".strip()

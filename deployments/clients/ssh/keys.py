"""Keys: new key pairs, reading private keys, host keys and their fingerprints.

A host key the server offers is compared with the pinned one by the connection
(connection.py); HostKeyChanged is what it raises when they differ.
"""

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass

import paramiko
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from .errors import SSHError, _address

# Key types the panel accepts, and the host-key algorithms that negotiate each of them.
HOST_KEY_ALGORITHMS = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
}


class HostKeyChanged(SSHError):
    """The server offered a host key other than the pinned one; nothing was sent to it."""

    def __init__(self, host: str, port: int, offered: "HostKey", pinned_fingerprint: str) -> None:
        self.offered = offered
        self.pinned_fingerprint = pinned_fingerprint
        super().__init__(
            f"The host key of {_address(host, port)} has changed: it was {pinned_fingerprint}, "
            f"the server now offers {offered.fingerprint}. Someone may be intercepting the "
            "connection, or the server was reinstalled. The panel did not log in. If the "
            "change is expected, an owner can accept the new key.",
            kind="host_key_changed",
        )


@dataclass(frozen=True)
class HostKey:
    key_type: str
    base64: str
    fingerprint: str

    @property
    def line(self) -> str:
        return f"{self.key_type} {self.base64}"

    @classmethod
    def from_line(cls, text: str) -> "HostKey":
        """Parse 'ssh-ed25519 AAAA... [comment]'; ValueError if it is not a public key line."""
        fields = text.strip().split()
        if len(fields) < 2 or any(c in text.strip() for c in "\r\n\0"):
            raise ValueError("Expected a single line: '<key type> <base64 key> [comment]'.")
        key_type, encoded = fields[0], fields[1]
        if key_type not in HOST_KEY_ALGORITHMS:
            raise ValueError(f"Unsupported key type {key_type!r}.")
        try:
            blob = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("The key is not valid base64.") from None
        if _blob_key_type(blob) != key_type:
            raise ValueError(f"The key data is not a {key_type} key.")
        return cls.from_blob(key_type, blob)

    @classmethod
    def from_blob(cls, key_type: str, blob: bytes) -> "HostKey":
        return cls(key_type, base64.b64encode(blob).decode("ascii"), fingerprint(blob))

    @classmethod
    def from_pkey(cls, key: paramiko.PKey) -> "HostKey":
        return cls.from_blob(key.get_name(), key.asbytes())


def fingerprint(blob: bytes) -> str:
    """'SHA256:...' as `ssh-keygen -lf` prints it."""
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def _blob_key_type(blob: bytes) -> str | None:
    if len(blob) < 4:
        return None
    length = int.from_bytes(blob[:4], "big")
    if len(blob) < 4 + length:
        return None
    try:
        return blob[4 : 4 + length].decode("ascii")
    except UnicodeDecodeError:
        return None


def generate_keypair(comment: str = "llm-stack-panel") -> tuple[str, str]:
    """A new ed25519 key pair: (private key as OpenSSH PEM text, 'ssh-ed25519 AAAA... comment')."""
    if any(c in comment for c in "\r\n\0"):
        raise ValueError("A key comment must be a single line.")
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return private, f"{public.decode('ascii')} {comment}".rstrip()


def load_private_key(text: str) -> paramiko.PKey:
    """Read an ed25519, ECDSA or RSA private key in OpenSSH or PEM (PKCS#1, SEC1, PKCS#8) form.

    Raises SSHError(kind="auth") saying what is wrong with anything else.
    """
    normalized = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not normalized:
        raise SSHError("No private key was given.", kind="auth")
    if normalized.startswith(("ssh-", "ecdsa-")) or "PUBLIC KEY-----" in normalized:
        raise SSHError(
            "This is a public key. Paste the private key, which starts with "
            "'-----BEGIN OPENSSH PRIVATE KEY-----' or similar.",
            kind="auth",
        )
    data = (normalized + "\n").encode("utf-8", errors="replace")
    try:
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
            key = serialization.load_ssh_private_key(data, password=None)
        else:
            key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        # cryptography raises TypeError when a key needs a password that was not given.
        raise SSHError(
            "This private key is protected by a passphrase, which the panel cannot use. "
            "Paste a key without a passphrase (ssh-keygen -p -N '' -f <file> removes it).",
            kind="auth",
        ) from None
    except (ValueError, binascii.Error):
        raise SSHError(
            "This is not a private key the panel can read. Paste the whole OpenSSH or PEM "
            "private key, including its BEGIN and END lines.",
            kind="auth",
        ) from None
    except Exception as e:  # an unsupported algorithm, for instance
        raise SSHError(f"This private key cannot be used: {e}.", kind="auth") from None

    if isinstance(key, ed25519.Ed25519PrivateKey):
        key_class = paramiko.Ed25519Key
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        key_class = paramiko.ECDSAKey
    elif isinstance(key, rsa.RSAPrivateKey):
        key_class = paramiko.RSAKey
    else:
        raise SSHError(
            "This kind of private key is not supported. Use an ed25519, ECDSA or RSA key.",
            kind="auth",
        )
    # paramiko reads every supported type from the OpenSSH format, whatever it came in.
    openssh = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode("ascii")
    try:
        return key_class.from_private_key(io.StringIO(openssh))
    except paramiko.SSHException as e:
        raise SSHError(f"This private key cannot be used: {e}.", kind="auth") from None


def public_key_line(private_key_text: str) -> str:
    """The public half of a private key, as an authorized_keys line ('ssh-ed25519 AAAA...')."""
    key = load_private_key(private_key_text)
    return f"{key.get_name()} {key.get_base64()}"

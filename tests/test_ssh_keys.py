"""Keys without a server: generating key pairs, reading private keys, host key lines."""

import subprocess

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from deployments.clients.ssh.errors import SSHError
from deployments.clients.ssh.keys import HostKey, generate_keypair, load_private_key


def test_generated_keys_are_an_ed25519_pair_that_ssh_keygen_agrees_with(tmp_path):
    private, public = generate_keypair("panel@example")
    key_file = tmp_path / "key"
    key_file.write_text(private)
    key_file.chmod(0o600)

    derived = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(key_file)], capture_output=True, text=True, check=True
    ).stdout.split()

    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert public.startswith("ssh-ed25519 AAAA")
    assert public.endswith(" panel@example")
    assert derived[:2] == public.split()[:2]


@pytest.mark.parametrize(
    "text, words",
    [
        ("garbage", "not a private key"),
        ("", "No private key"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ test", "public key"),
        (
            "-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----",
            "not a private key",
        ),
    ],
)
def test_load_private_key_explains_what_is_wrong(text, words):
    with pytest.raises(SSHError) as caught:
        load_private_key(text)

    assert caught.value.kind == "auth"
    assert words in str(caught.value)


def test_load_private_key_refuses_a_key_with_a_passphrase():
    key = ec.generate_private_key(ec.SECP256R1())
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.BestAvailableEncryption(b"passphrase"),
    ).decode()

    with pytest.raises(SSHError) as caught:
        load_private_key(encrypted)

    assert caught.value.kind == "auth"
    assert "passphrase" in str(caught.value)


@pytest.mark.parametrize(
    "key, private_format, key_name",
    [
        (rsa.generate_private_key(65537, 2048), "TraditionalOpenSSL", "ssh-rsa"),
        (rsa.generate_private_key(65537, 2048), "PKCS8", "ssh-rsa"),
        (ec.generate_private_key(ec.SECP256R1()), "TraditionalOpenSSL", "ecdsa-sha2-nistp256"),
        (ec.generate_private_key(ec.SECP384R1()), "OpenSSH", "ecdsa-sha2-nistp384"),
    ],
)
def test_load_private_key_reads_pem_and_openssh_keys(key, private_format, key_name):
    text = key.private_bytes(
        serialization.Encoding.PEM,
        getattr(serialization.PrivateFormat, private_format),
        serialization.NoEncryption(),
    ).decode()

    # Pasted into a browser form: Windows line ends and stray blank space.
    assert load_private_key("  " + text.replace("\n", "\r\n") + "\n\n").get_name() == key_name


def test_load_private_key_reads_a_generated_key():
    private, public = generate_keypair()

    key = load_private_key(private)

    assert f"{key.get_name()} {key.get_base64()}" == " ".join(public.split()[:2])


def test_host_key_lines_round_trip_and_bad_ones_are_refused():
    _, public = generate_keypair("comment")
    key = HostKey.from_line(public)

    assert key.line == " ".join(public.split()[:2])
    assert key.key_type == "ssh-ed25519"
    for bad in ["", "ssh-ed25519", "ssh-ed25519 !!!", "ssh-dss AAAA", "ssh-rsa " + key.base64]:
        with pytest.raises(ValueError):
            HostKey.from_line(bad)

"""Files: writing a file on the server over SFTP, atomically and with its mode set first."""

import contextlib
import errno
import threading
import uuid
from pathlib import PurePosixPath

import paramiko

from .connection import SSHConnection
from .errors import SSHError


class FilesMixin(SSHConnection):
    """Writing files on the connection's server."""

    def upload(self, content: bytes | str, remote_path: str, *, mode: int = 0o600) -> None:
        """Write `content` to `remote_path` atomically: a temporary file, then a rename."""
        data = content.encode("utf-8") if isinstance(content, str) else content
        path = PurePosixPath(remote_path)
        temporary = str(path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp"))
        sftp = self._open_sftp()
        try:
            try:
                # Created empty and chmod-ed first, so the content is never readable by others.
                with sftp.open(temporary, "wbx") as remote:
                    remote.chmod(mode)
                    remote.set_pipelined(True)
                    remote.write(data)
                # Pipelined writes report no error (paramiko does not read their replies): a
                # full disk shows as a short file, which must not take the real file's place.
                written = sftp.stat(temporary).st_size
                if written != len(data):
                    raise OSError(
                        errno.EIO, f"only {written} of {len(data)} bytes reached the disk"
                    )
                sftp.posix_rename(temporary, str(path))
            except TimeoutError:
                raise
            except BaseException:
                with contextlib.suppress(Exception):
                    sftp.remove(temporary)
                raise
        except TimeoutError:
            raise SSHError(
                f"Writing {remote_path} on {self.address} stalled for {self.command_timeout:g} "
                "seconds and was abandoned.",
                kind="timeout",
                during_command=True,
            ) from None
        except OSError as e:
            raise self._file_error(remote_path, e, len(data)) from None
        except (paramiko.SSHException, EOFError) as e:
            raise SSHError(
                f"Writing {remote_path} on {self.address} failed: {e}.", kind="protocol"
            ) from None
        finally:
            sftp.close()

    def _open_sftp(self) -> paramiko.SFTPClient:
        transport = self._connected()
        channel = None
        # invoke_subsystem waits for the server's answer without a limit of its own.
        watchdog = threading.Timer(self.connect_timeout, lambda: channel and channel.close())
        watchdog.daemon = True
        try:
            channel = transport.open_session(timeout=self.connect_timeout)
            channel.settimeout(self.command_timeout)
            watchdog.start()
            channel.invoke_subsystem("sftp")
            return paramiko.SFTPClient(channel)
        except (paramiko.SSHException, OSError, EOFError) as e:
            if channel is not None:
                channel.close()
            raise SSHError(
                f"Cannot open an SFTP session on {self.address} ({e}). Is SFTP enabled in the "
                "server's sshd_config?",
                kind="protocol",
            ) from None
        finally:
            watchdog.cancel()

    def _file_error(self, remote_path: str, error: OSError, size: int) -> SSHError:
        if error.errno in (errno.EACCES, errno.EPERM):
            return SSHError(
                f"User {self.user} may not write {remote_path} on {self.address}: permission "
                "denied.",
                kind="permission",
            )
        if error.errno == errno.ENOENT:
            return SSHError(
                f"Cannot write {remote_path} on {self.address}: its folder does not exist.",
                kind="command",
            )
        folder = str(PurePosixPath(remote_path).parent)
        # SFTP reports a full disk as a bare "Failure": the free space tells.
        if error.errno in (errno.ENOSPC, errno.EDQUOT) or self._lacks_room(folder, size):
            return SSHError(
                f"Cannot write {remote_path} on {self.address}: no space left on the disk that "
                f"holds {folder}. Free some space there, then retry.",
                kind="command",
            )
        reason = error.strerror or str(error) or "the server refused the write"
        return SSHError(f"Cannot write {remote_path} on {self.address}: {reason}.", kind="command")

    def _lacks_room(self, folder: str, size: int) -> bool:
        """Whether the file system holding FOLDER has less than SIZE bytes free; False where
        that cannot be told."""
        try:
            # FilesMixin and CommandsMixin make one SSHClient.
            result = self.run(["df", "-Pk", folder], check=False, timeout=30)
        except SSHError:
            return False
        lines = result.stdout.splitlines()
        try:
            available = int(lines[-1].split()[3]) * 1024
        except (IndexError, ValueError):
            return False
        return result.exit_status == 0 and available < size

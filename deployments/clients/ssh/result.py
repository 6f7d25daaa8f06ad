"""What a command that ran on a server left: its exit status and output."""

from dataclasses import dataclass


@dataclass
class CommandResult:
    argv: list[str]
    exit_status: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

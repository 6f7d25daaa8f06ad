"""The version matrix, as data: which image and tag each service runs in each version line.

A line is tested as a whole; add a new one rather than bumping a single image in place.
"""

from dataclasses import dataclass

from ..choices import Registry

ALIYUN_PREFIX = "registry.cn-hangzhou.aliyuncs.com/fastgpt"


@dataclass(frozen=True)
class Image:
    """One service's image: its name and tag, and where each registry keeps it."""

    name: str  # the last path segment, used under a custom or mirror prefix
    tag: str
    docker_hub: str | None = None  # repository path on Docker Hub, if published there
    ghcr: str | None = None  # repository path on ghcr.io, if published there

    def reference(self, registry: str, custom_prefix: str = "") -> str:
        if registry == Registry.CUSTOM:
            return f"{custom_prefix.rstrip('/')}/{self.name}:{self.tag}"
        if registry == Registry.ALIYUN:
            return f"{ALIYUN_PREFIX}/{self.name}:{self.tag}"
        # An image only one of the public registries has comes from that one.
        if (registry == Registry.GHCR and self.ghcr) or not self.docker_hub:
            return f"ghcr.io/{self.ghcr}:{self.tag}"
        return f"{self.docker_hub}:{self.tag}"


@dataclass(frozen=True)
class VersionLine:
    key: str
    label: str
    images: dict[str, Image]
    # Xinference publishes a CPU build of each release under a "-cpu" tag.
    xinference_cpu_suffix: str = "-cpu"


LINES: dict[str, VersionLine] = {
    line.key: line
    for line in (
        VersionLine(
            key="fastgpt-4.8.8",
            label="FastGPT 4.8.8-fix2, One API 0.6.7, Xinference 0.16.3",
            images={
                "pg": Image("pgvector", "0.7.0-pg15", docker_hub="pgvector/pgvector"),
                "mongo": Image("mongo", "5.0.18", docker_hub="mongo"),
                "sandbox": Image("fastgpt-sandbox", "v4.8.8", ghcr="labring/fastgpt-sandbox"),
                "fastgpt": Image("fastgpt", "v4.8.8-fix2", ghcr="labring/fastgpt"),
                "mysql": Image("mysql", "8.0.36", docker_hub="mysql"),
                "oneapi": Image(
                    "one-api", "v0.6.7", docker_hub="justsong/one-api", ghcr="songquanpeng/one-api"
                ),
                "xinference": Image("xinference", "v0.16.3", docker_hub="xprobe/xinference"),
            },
        ),
    )
}

DEFAULT_LINE = "fastgpt-4.8.8"


def line_choices() -> list[tuple[str, str]]:
    return [(line.key, line.label) for line in LINES.values()]


def get_line(key: str) -> VersionLine:
    try:
        return LINES[key]
    except KeyError:
        raise KeyError(f"Unknown version line {key!r}: choose one of {', '.join(LINES)}.") from None

"""Hostile strings, put through every field whose value reaches a shell, a YAML or JSON file,
a file name or an outside service's body. `{marker}` stands for a path that must never come to
exist: a command that ran would have made it."""

MARKER_PREFIX = "/tmp/controlpanel-pwned-"  # noqa: S108 - a file that must never be made

TEMPLATES = [
    # Shell: separators, substitution, redirection, options taken for arguments.
    "x; touch {marker}",
    "$(touch {marker})",
    "`touch {marker}`",
    "x && touch {marker} || touch {marker}",
    "x | tee {marker}",
    "x > {marker}",
    "-oProxyCommand=touch {marker}",
    # YAML: new keys, anchors, aliases, tags, flow syntax, documents.
    "x\ninjected: true",
    "x\r\n  injected: true",
    "&anchor x",
    "*anchor",
    "!!python/object/apply:os.system ['touch {marker}']",
    "key: value",
    "- item",
    "{injected: true}",
    "[1, 2]",
    "---\ninjected: true",
    "# comment",
    # JSON: quotes and braces that would close a string or an object.
    '"}, {"injected": true}, {"',
    "\\",
    '\\"',
    # Paths and URL encodings.
    "../../../../etc/passwd",
    "/etc/shadow",
    "%2e%2e%2f%2e%2e%2f",
    "100% sure",
    "%s%n%x",
    # Sizes and encodings.
    "x" * 5000,
    "名前 模型 🚀",
    "\x00zero",
    "\u202eevil\u202c",
]


def corpus(marker: str) -> list[str]:
    return [template.replace("{marker}", marker) for template in TEMPLATES]


def ids() -> list[str]:
    return [f"{index}:{template[:20]!r}" for index, template in enumerate(TEMPLATES)]

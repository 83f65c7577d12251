"""Profiles: `--config FILE` turns a YAML mapping of pipeline options into flags.

A profile is a flat mapping `option_name: value` (Beam's own options or the indexer's), e.g.
`runner: FlinkRunner`. Its flags are placed before the command line's, so a flag given on the
command line overrides the profile. `true` gives a bare flag, `false`/null omits it, a list
repeats the flag.

Example::

    argv = expand_config(["index", "repo", "-o", "idx", "--config", "configs/flink.yaml"])
"""

from __future__ import annotations

import os
import re

from ..errors import UsageError

_OPTION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")


class ConfigError(UsageError):
    """A profile that cannot be turned into flags."""


def profile_flags(path: str | os.PathLike) -> list[str]:
    import yaml  # only with --config: 30 ms of every command otherwise

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config {path} is not valid YAML: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of option names to values")
    flags = []
    for key, value in data.items():
        if not isinstance(key, str) or not _OPTION_NAME.match(key):
            raise ConfigError(f"config {path}: invalid option name {key!r}")
        values = value if isinstance(value, list) else [value]
        for item in values:
            if item is True:
                flags.append(f"--{key}")
            elif item is False or item is None:
                continue
            elif isinstance(item, (str, int, float)):
                flags.append(f"--{key}={item}")
            else:
                raise ConfigError(f"config {path}: option {key} has an unsupported value")
    return flags


def expand_config(argv: list[str]) -> list[str]:
    """argv with each `--config FILE` replaced by its flags, placed before the other options."""
    rest, flags = [], []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--config":
            if i + 1 >= len(argv):
                raise ConfigError("--config needs a file")
            flags += profile_flags(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--config="):
            flags += profile_flags(arg.split("=", 1)[1])
        else:
            rest.append(arg)
        i += 1
    if not flags or not rest:
        return rest
    # After the subcommand: argparse lets a later flag override an earlier one.
    return [rest[0], *flags, *rest[1:]]

"""Reading config files: a YAML loader stricter than PyYAML's safe one, regular files of bounded size only, and
the default config shipped with the package.

:func:`load_yaml` reads experiment configs, a pipeline run's ``config.yaml`` and the section files of the
command-line flags; :func:`load_config` turns an experiment config file into an
:class:`~gmc_rl.config.schema.ExperimentConfig`.
"""

from __future__ import annotations

import errno
import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from gmc_rl.config.conversion import from_dict
from gmc_rl.config.limits import MAX_CONFIG_BYTES, MAX_CONFIG_DEPTH
from gmc_rl.config.schema import ExperimentConfig
from gmc_rl.errors import ConfigError
from gmc_rl.io import LINK_LOOP, mode_kind, wrong_path


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a config may not use (raised by :class:`StrictLoader`, reported with its line)."""


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python tags), stricter where a config must be small and unambiguous.

    Refused, with the line and column:

    - anchors and aliases (``&name`` / ``*name``): nested aliases expand exponentially, so a 500-byte file can
      become gigabytes of data (and a config is short enough to write out);
    - merge keys (``<<``), which need aliases to be of use;
    - duplicate keys in one mapping, which PyYAML resolves silently by keeping the last;
    - keys that are not strings (``1:``, ``null:``, and ``on:`` / ``yes:``, which YAML 1.1 reads as true):
      every key of a config names a setting or a keyword argument;
    - nesting deeper than :data:`MAX_CONFIG_DEPTH` (the composer recurses once per level).
    """

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(problem="anchors and aliases (&name, *name) are not allowed in a config; write the "
                                   "values out", problem_mark=event.start_mark)
        if self._depth >= MAX_CONFIG_DEPTH:
            raise _Refused(problem=f"nested deeper than {MAX_CONFIG_DEPTH} levels (MAX_CONFIG_DEPTH)",
                           problem_mark=event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _Refused(problem="merge keys (<<) are not allowed in a config; write the keys out",
                               problem_mark=key_node.start_mark)
            key = self.construct_object(key_node, deep=True)  # deep: a list key is shown with its items
            if not isinstance(key, str):
                hint = " (YAML reads on, off, yes and no as booleans)" if isinstance(key, bool) else ""
                raise _Refused(problem=f"keys must be strings, got {key!r} ({type(key).__name__}); quote it{hint}",
                               problem_mark=key_node.start_mark)
            if key in seen:
                raise _Refused(problem=f"duplicate key {key!r} in one mapping (YAML would keep only the last)",
                               problem_mark=key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_regular_file(path: Path, what: str, limit: int) -> bytes:
    """At most ``limit`` bytes of the regular file ``path``; anything else (a directory, a FIFO or a process
    substitution such as ``<(cat x)``, ``/dev/zero``, a socket) is refused by what it is, without blocking on it or
    reading it endlessly: the file is opened non-blocking and checked with ``fstat`` on the opened descriptor, so a
    file swapped for a FIFO after a check cannot make the read hang."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:  # nothing there, or a symbolic link to nothing (named with its target)
        hint = "; point the link at a YAML file or pass the file itself" if path.is_symlink() else ""
        raise FileNotFoundError(wrong_path(path, what, "file") + hint) from None
    except IsADirectoryError:
        fd = -1
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ConfigError(f"{what} {path} is {LINK_LOOP}; pass a YAML file") from None
        if isinstance(exc, PermissionError):
            raise PermissionError(f"{what} {path} is not readable: {exc.strerror}") from None
        raise ConfigError(f"{what} {path} cannot be opened: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode if fd >= 0 else stat.S_IFDIR
        if not stat.S_ISREG(mode):
            hint = "; pass a YAML file such as experiments/quick.yaml" if stat.S_ISDIR(mode) else \
                "; pass a YAML file (write the stream to a file first)"
            raise ConfigError(f"{what} {path} is {mode_kind(mode)}, not a regular file{hint}")
        with os.fdopen(fd, "rb") as stream:
            fd = -1  # closed by the stream
            return stream.read(limit)
    finally:
        if fd >= 0:
            os.close(fd)


def load_yaml(path: str | os.PathLike, what: str = "config file") -> Any:
    """Parse the YAML file ``path`` with :class:`StrictLoader`; raise :class:`ConfigError` for anything wrong.

    Files over :data:`MAX_CONFIG_BYTES` are refused before they are parsed. Used for experiment configs and for
    the ``config.yaml`` of pipeline run directories; ``what`` names the file in the messages.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ConfigError: a directory, a FIFO, a device or anything else that is not a regular file, a file that is too
            large, not UTF-8, not valid YAML, refused by
            :class:`StrictLoader` (the message gives the line), or holding no document (empty, whitespace or
            comments only: not a config).
    """
    path = Path(path)
    raw = _read_regular_file(path, what, MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{what} {path} is larger than {MAX_CONFIG_BYTES} bytes (MAX_CONFIG_BYTES); "
                          "an experiment config is a few KB")
    try:
        # What yaml.load(text, Loader=StrictLoader) does; whitespace alone (tabs too, which YAML calls invalid)
        # parses as the empty file it is.
        loader = StrictLoader(raw.decode("utf-8") if raw.strip() else "")
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except _Refused as exc:
        mark = exc.problem_mark
        raise ConfigError(f"{what} {path}, line {mark.line + 1}, column {mark.column + 1}: {exc.problem}") from None
    except yaml.MarkedYAMLError as exc:  # one line: where, and what the parser expected
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        detail = "; ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError(f"{what} {path} is not valid YAML{where}: {detail}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {path} is not valid YAML: {' '.join(str(exc).split())}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8 text ({exc}); pass a YAML file") from exc
    if data is None:  # what YAML makes of an empty file, whitespace, comments only, or a bare '---' / 'null'
        raise ConfigError(f"{what} {path} holds no config: it is empty or has only whitespace, comments or a null "
                          "document; write its keys (see experiments/quick.yaml), or leave out the option to use "
                          "the defaults")
    return data


def load_config(path: str | os.PathLike) -> ExperimentConfig:
    """Load an :class:`ExperimentConfig` from a YAML file (:func:`load_yaml`; unknown keys are errors)."""
    path = Path(path)
    data = load_yaml(path)
    try:
        return from_dict(ExperimentConfig, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def default_config_path() -> Path:
    """Path of the embedded default (quick) config shipped with the package."""
    return Path(str(resources.files("gmc_rl.experiments") / "quick.yaml"))

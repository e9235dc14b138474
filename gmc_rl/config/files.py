"""Reading config files: a YAML loader stricter than PyYAML's safe one, regular files of bounded size only, and
the default config shipped with the package.

:func:`load_yaml` reads experiment configs, a pipeline run's ``config.yaml`` and the section files of the
command-line flags; :func:`load_config` turns an experiment config file into an
:class:`~gmc_rl.config.schema.ExperimentConfig`.
"""

from __future__ import annotations

import errno
import os
import re
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


_INT_TAG, _FLOAT_TAG, _STR_TAG = (f"tag:yaml.org,2002:{name}" for name in ("int", "float", "str"))

_FLOAT = re.compile(r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)
"""The floats of :class:`StrictLoader`: YAML 1.1's, and also an exponent without a point or an exponent sign
(``1e-3``, ``1e3``, ``1.5e3``, ``-.5``), which PyYAML's YAML 1.1 resolver leaves as text while a command-line flag
reads it as a number. (The same forms as jsonargparse's loader of flag values.)"""

_NUMBER_FORMS = (
    (re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$"), "base-60 (sexagesimal)"),
    (re.compile(r"^[-+]?0x[0-9a-fA-F_]+$"), "hexadecimal"),
    (re.compile(r"^[-+]?0b[01_]+$"), "binary"),
    (re.compile(r"^[-+]?0o[0-7_]+$"), "YAML 1.2 octal"),
    (re.compile(r"^[-+]?0[0-9_]+$"), "leading-zero"),
)


def number_problem(text: str, flag: bool = False) -> str | None:
    """Why ``text`` may not be a config value, or None: a YAML 1.1 number form whose value depends on who reads it.

    PyYAML (YAML 1.1) reads the plain scalars ``1:30`` as 90 (base 60), ``010`` as 8 (octal), ``0x1F`` as 31 and
    ``0b11`` as 3, while a command-line flag reads ``010`` as 10 and YAML 1.2 and JSON read none of them so; ``0o17``
    is 15 in YAML 1.2 but text in YAML 1.1. Such a value is refused, in a file and in a flag alike, with the number it
    would have been and the way to write it. Plain decimal integers and floats (``20000``, ``-3``, ``0.5``, ``1e-3``,
    ``1_000``) are not affected. ``flag``: ``text`` is the value of a number flag, which also reads ``09`` as 9 (YAML
    1.1 reads it as text, which a number key refuses by its type), and which cannot be text (no "quote it" hint).

    Example:
        >>> print(number_problem("010"))  # doctest: +NORMALIZE_WHITESPACE
        010 is a leading-zero number, which YAML 1.1 reads as octal (8) and a command-line flag as decimal (10);
        write 10 (or 8) without the leading zero, or quote it ('010') for text
        >>> number_problem("1:30", flag=True)
        '1:30 is a base-60 (sexagesimal) number, which YAML 1.1 reads as 90; write 90'
        >>> number_problem("09"), number_problem("09", flag=True)
        (None, '09 is a leading-zero number, which a command-line flag reads as 9 and YAML 1.1 as text; write 9')
        >>> number_problem("1e-3") is None and number_problem("-0") is None and number_problem("0.5") is None
        True
    """
    text = text.strip()
    form = next((form for pattern, form in _NUMBER_FORMS if pattern.match(text)), None)
    if form is None:
        return None
    quote = "" if flag else f", or quote it ({text!r}) for text"
    digits = text.replace("_", "")
    if form == "leading-zero":
        decimal = int(digits)
        if set(digits) & {"8", "9"}:  # not octal: YAML 1.1 reads it as text
            return (f"{text} is a leading-zero number, which a command-line flag reads as {decimal} and YAML 1.1 as "
                    f"text; write {decimal}") if flag else None
        octal = int(digits, 8)
        also = f" (or {octal})" if octal != decimal else ""
        return (f"{text} is a leading-zero number, which YAML 1.1 reads as octal ({octal}) and a command-line flag as "
                f"decimal ({decimal}); write {decimal}{also} without the leading zero{quote}")
    if form == "YAML 1.2 octal":
        value = int(digits, 8)
        return f"{text} is a {form} number, which YAML 1.2 reads as {value} and YAML 1.1 as text; write {value}{quote}"
    value = yaml.safe_load(text)  # what YAML 1.1 makes of it
    if isinstance(value, str):  # '0:30': base 60 needs a first digit of 1-9, so YAML 1.1 reads text, as a flag does
        return None
    return f"{text} is a {form} number, which YAML 1.1 reads as {value!r}; write {value!r}{quote}"


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python tags), stricter where a config must be small and unambiguous.

    Refused, with the line and column:

    - anchors and aliases (``&name`` / ``*name``): nested aliases expand exponentially, so a 500-byte file can
      become gigabytes of data (and a config is short enough to write out);
    - merge keys (``<<``), which need aliases to be of use;
    - duplicate keys in one mapping, which PyYAML resolves silently by keeping the last;
    - keys that are not strings (``1:``, ``null:``, and ``on:`` / ``yes:``, which YAML 1.1 reads as true):
      every key of a config names a setting or a keyword argument;
    - values in a YAML 1.1 number form whose value depends on the reader (:func:`number_problem`: ``1:30``,
      ``010``, ``0x1F``, ``0b11``, ``0o17``), named with their config key;
    - nesting deeper than :data:`MAX_CONFIG_DEPTH` (the composer recurses once per level).

    And one YAML 1.1 surprise is read as YAML 1.2 and a command-line flag read it: ``1e-3`` is a float (:data:`_FLOAT`).
    ``key_prefix`` is the config key of the whole document (a flag's value), named in a refusal before the
    document's own keys.
    """

    _depth = 0
    key_prefix = ""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(problem="anchors and aliases (&name, *name) are not allowed in a config; write the "
                                   "values out", problem_mark=event.start_mark)
        if self._depth >= MAX_CONFIG_DEPTH:
            raise _Refused(problem=f"nested deeper than {MAX_CONFIG_DEPTH} levels (MAX_CONFIG_DEPTH)",
                           problem_mark=event.start_mark)
        if isinstance(parent, yaml.MappingNode) and index is None:
            segment = None  # a key: a number there is refused as a key that is not a string
        elif isinstance(parent, yaml.SequenceNode):
            segment = f"[{index}]"
        else:
            segment = index.value if isinstance(index, yaml.ScalarNode) else "" if parent is None else "?"
        path = getattr(self, "_path", [])
        if segment is not None and isinstance(event, yaml.ScalarEvent) and (
                (event.tag is None and event.implicit[0]) or event.tag in (_INT_TAG, _FLOAT_TAG)):
            problem = number_problem(event.value)
            if problem is not None:
                key = _join_key([self.key_prefix, *path, segment])
                raise _Refused(problem=f"config key {key!r}: {problem}" if key else problem,
                               problem_mark=event.start_mark)
        self._depth += 1
        self._path = [*path, segment or ""]
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1
            self._path = path

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


StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, _FLOAT if tag == _FLOAT_TAG else pattern) for tag, pattern in resolvers]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


class StrictDumper(yaml.SafeDumper):
    """PyYAML's safe dumper with :class:`StrictLoader`'s resolvers: a string that the loader would read as a number
    (``'1e3'``, which YAML 1.1 writes unquoted) or refuse (``'09'``, ``'0o17'``) is quoted, so what is dumped loads
    back as it was."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        tag = super().resolve(kind, value, implicit)
        if kind is yaml.ScalarNode and implicit[0] and tag == _STR_TAG and number_problem(value) is not None:
            return "tag:gmc-rl,2024:refused-plain"  # not the str tag, so the emitter quotes the string
        return tag


StrictDumper.yaml_implicit_resolvers = StrictLoader.yaml_implicit_resolvers


def dump_yaml(data: Any, **kwargs: Any) -> str:
    """``yaml.safe_dump(data, **kwargs)`` that :class:`StrictLoader` reads back unchanged (:class:`StrictDumper`)."""
    return yaml.dump(data, Dumper=StrictDumper, **kwargs)


def _join_key(parts: list[str]) -> str:
    """A dotted config key from its parts (``["collect", "steps"]`` -> ``collect.steps``, ``["seeds", "[0]"]`` ->
    ``seeds[0]``); empty parts are skipped."""
    key = ""
    for part in parts:
        if part:
            key += part if part.startswith("[") or not key else f".{part}"
    return key


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


def load_yaml(path: str | os.PathLike, what: str = "config file", key_prefix: str = "") -> Any:
    """Parse the YAML file ``path`` with :class:`StrictLoader`; raise :class:`ConfigError` for anything wrong.

    Files over :data:`MAX_CONFIG_BYTES` are refused before they are parsed. Used for experiment configs and for
    the ``config.yaml`` of pipeline run directories; ``what`` names the file in the messages, ``key_prefix`` the
    config key the file's keys are under (``collect`` for a section file given as ``--collect FILE``).

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
        loader.key_prefix = key_prefix
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

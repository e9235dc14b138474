"""Every key of the experiment config as a command-line flag, with its type, default and docstring in ``--help``.

The flags of a config section are built by jsonargparse from the dataclasses of :mod:`gmc_rl.config`:
``--pretrain.epochs 3``, ``--pretrain.model.conv_channels [16,32]``, ``--agent.hyperparams '{"gamma": 0.98}'``,
``--evaluate.conditions [complete,image]``. The experiment's own keys are ``--name``, ``--env`` (``--env_id``),
``--env-kwargs`` (``--env_kwargs``), ``--seeds 0 1 2`` and ``--methods gmc state`` (or one quoted list, ``--seeds
'[0, 1, 2]'``: :func:`expand_bracket_lists`). A command gets the flags of
every section it reads (``gmc-rl pipeline`` all of them), and the section it is about also keeps short forms
(``gmc-rl pretrain --epochs 3``, ``gmc-rl train --total-timesteps 20000``). A whole section can be given as
``--pretrain FILE`` or ``--pretrain '{"epochs": 3}'``. Values are read with the experiment configs' strict YAML
loader.

A command starts from a base config (its ``--config`` file, or the defaults, or the stored config of the run it
resumes). The base values become the parser's defaults, so a flag overrides only the key it names and ``--help``
shows the values in effect. The parsed values then go through :func:`gmc_rl.config.from_dict`: the same strict
checks and did-you-mean messages as a YAML file.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import re
import sys
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jsonargparse
import yaml

from gmc_rl.commands.flag_values import (  # noqa: F401  (re-exported: config_flags is where callers import them)
    SECTIONS,
    TOP_LEVEL,
    check_flag_values,
    expand_bracket_lists,
    keep_mapping_values,
    with_list_forms,
)
from gmc_rl.config import (
    ExperimentConfig,
    StrictLoader,
    dump_yaml,
    from_dict,
    to_dict,
)
from gmc_rl.env_ids import IMPORT_FLAG
from gmc_rl.errors import suggest


def _strict_yaml(text: str) -> Any:
    """Parse a flag value (or a section file given as ``--pretrain FILE``) with the experiment configs' strict
    YAML loader: no anchors or aliases, duplicate or non-string keys."""
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


jsonargparse.set_parsing_settings(docstring_parse_attribute_docstrings=True)  # the field docstrings become help
jsonargparse.set_loader("yaml", _strict_yaml, exceptions=(yaml.YAMLError,))

_TOP_LEVEL_FLAGS = {"name": ["--name"], "env_id": ["--env", "--env_id"], "env_kwargs": ["--env-kwargs", "--env_kwargs"],
                    "seeds": ["--seeds"], "methods": ["--methods"]}
_TOP_LEVEL_HELP = {
    "name": "name of the experiment (the default run directory is runs/<name>)",
    "env_id": "Gymnasium id of the multimodal env, e.g. gmc_rl/PendulumSound-v0",
    "env_kwargs": "keyword arguments of the env, as JSON, e.g. '{\"image_size\": 64}'",
    "seeds": "agent seeds, one agent per method and seed (e.g. --seeds 0 1 2)",
    "methods": "methods compared (e.g. --methods gmc state); see `gmc-rl train --help` for the list",
}


GIVEN = "_gmc_rl_given"
"""Attribute set on a parser action whose default was replaced by the value given beside ``--help``."""
_REST_LITERAL = re.compile(r"``(.+?)``", re.S)
_REST_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")


def plain_help(text: str) -> str:
    """Help text without reST markup (double-backquoted literals and roles such as func): single backquotes.

    The field docstrings of :mod:`gmc_rl.config` are written for Sphinx; a terminal shows them as plain text.

    Example:
        >>> plain_help("a ``.zip`` of :func:`~gmc_rl.x.f`")
        'a `.zip` of `gmc_rl.x.f`'
    """
    return _REST_ROLE.sub(r"`\1`", _REST_LITERAL.sub(r"`\1`", text))


class HelpFormatter(jsonargparse.DefaultHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """jsonargparse's help (each flag's type and default), with descriptions and epilogs printed as written.

    Four changes: reST markup becomes plain text (:func:`plain_help`); a flag with ``choices`` shows its type, not
    jsonargparse's wrapper function (``_get_type_str``); a flag without a value gets no
    "(default: null)" (its help says what leaving it out means, e.g. "(default: runs/<config name>)", which was shown
    twice); and a flag given beside ``--help`` shows "given: VALUE" (:func:`show_given_values`).
    """

    def _get_help_string(self, action: argparse.Action) -> str:
        text = super()._get_help_string(action)
        if getattr(action, GIVEN, False):
            return text.replace("default: %(default)s", "given: %(default)s")
        if action.default is None:  # not given; the help says what that means where it matters
            for auto in (" (default: %(default)s)", ", default: %(default)s", "default: %(default)s"):
                text = text.replace(auto, "")
        return text

    def format_help(self) -> str:
        return plain_help(super().format_help())

    def _get_type_str(self, action: argparse.Action) -> str | None:
        """The flag's type as written (``int``), not the wrapper function jsonargparse puts in its place for a flag
        with ``choices`` (shown as ``<function <locals>.<lambda> at 0x...>``)."""
        text = super()._get_type_str(action)
        typehint = getattr(action, "_typehint", None)
        if text is not None and "<" in text and typehint is not None:
            return getattr(typehint, "__name__", str(typehint))
        return text


def one_line(message: str) -> str:
    """jsonargparse's multi-line error message as one line, in gmc-rl's words ("config key 'a.b': expected int")."""
    parts = [" ".join(line.split()).lstrip("- ") for line in message.splitlines() if line.strip()]
    text = " ".join(part if part.endswith(":") else part + ";" for part in parts).rstrip(";")
    text = re.sub(r'Parser key "([^"]+)" element (\d+):',  # jsonargparse counts a list's elements from 1
                  lambda m: f"config key '{m.group(1)}[{int(m.group(2)) - 1}]':", text)
    text = re.sub(r'Parser key "([^"]+)":', r"config key '\1':", text)
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text)
    return text.replace("Expected a ", "expected ").replace(". Got value: ", ", got ")


class CommandParser(jsonargparse.ArgumentParser):
    """A jsonargparse parser that reports a bad command line in one line (``gmc-rl CMD: error: ...``), as every other
    gmc-rl error, instead of jsonargparse's usage block; its "unrecognized arguments" error suggests the closest
    flags."""

    section_files: Sequence[SectionFile] = ()
    """The section files of the command line (:func:`read_section_files`), named in an error about their values."""

    @property
    def default_env(self) -> bool:
        """Never parse environment variables: gmc-rl's settings come from flags and files, which the run records.
        jsonargparse would otherwise read ``GMC_RL ...`` variables when ``JSONARGPARSE_DEFAULT_ENV`` is set, and
        they would override flags (or be ignored for the config path) without a trace in the run's config."""
        return False

    @default_env.setter
    def default_env(self, value: bool) -> None:
        self._default_env = False

    def parse_args(self, args: Sequence[str] | None = None, *rest: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """jsonargparse's parse, after :func:`expand_bracket_lists` (``--seeds [0,1]`` is ``--seeds 0 1``) and
        :func:`check_flag_values` (a refused value is reported in one line)."""
        argv, message = expand_bracket_lists(self, list(sys.argv[1:] if args is None else args))
        message = message or check_flag_values(self, argv)
        if message is not None:
            self.error(message)
        parsed = super().parse_args(argv, *rest, **kwargs)
        keep_mapping_values(self, argv, parsed)
        return parsed

    def error(self, message: str, ex: Exception | None = None) -> typing.NoReturn:
        if message.startswith("unrecognized arguments:"):
            flags = [option for action in self._actions for option in action.option_strings]
            unknown = [word.split("=", 1)[0] for word in message.split(":", 1)[1].split() if word.startswith("--")]
            message += "".join(suggest(word, flags) for word in unknown)
        if not self.exit_on_error:
            super().error(message, ex)  # raises for the caller (a nested parse, a config file being loaded)
        text = one_line(message)
        blamed = blame_section_file(text, self.section_files)  # a list flag's message shows its accepted forms
        text = with_list_forms(self, text) if blamed == text else blamed
        sys.stderr.write(f"{self.prog}: error: {text} (`{self.prog} --help` lists the flags)\n")
        self.exit(2)



def command_parser(prog: str, description: str) -> jsonargparse.ArgumentParser:
    """An empty parser for one ``gmc-rl`` command.

    Abbreviated flags are refused (``allow_abbrev=False``), as :func:`gmc_rl.commands.common.peek` refuses them:
    argparse would otherwise take ``--conf FILE`` for ``--config FILE`` here while ``peek``, which reads the config
    file before this parser runs, does not, so the file would never be read; and an abbreviation that is unique
    today (``--res``) would silently change meaning when a flag is added.
    """
    return CommandParser(prog=prog, description=description, formatter_class=HelpFormatter, allow_abbrev=False)


def add_import_argument(parser: jsonargparse.ArgumentParser) -> None:
    """``--import MODULE`` (repeatable), which every command has: :func:`gmc_rl.cli.import_given_modules` imports
    the modules before the command reads anything; the parsed value is only kept for the record."""
    parser.add_argument(
        IMPORT_FLAG, dest="import_modules", action="append", default=[], metavar="MODULE",
        help="import this Python module first (repeatable): the module of your own env, so that agents, checkpoints "
             "and datasets of a 'module:id' env can be read, e.g. --import my_package.sensors for "
             "my_package.sensors:my_project/Env-v0. gmc-rl never imports a module named in a file it reads")


PRINT_CONFIG_FLAGS = ("--print_config", "--print-config")
"""Print the settings in effect and exit (jsonargparse's name; :func:`gmc_rl.cli` handles it for every command)."""
HELP_FLAGS = ("-h", "--help")


def add_print_config_argument(parser: jsonargparse.ArgumentParser) -> None:
    """``--print_config`` in the flag list. :func:`gmc_rl.cli.main` takes it out of the arguments before parsing
    (jsonargparse reserves the name for its own config-file action, which these parsers do not use)."""
    parser.add_argument(*PRINT_CONFIG_FLAGS, dest="print_config", action="store_true",
                        help="print the settings in effect (the experiment config as YAML, usable as --config, "
                             "with the command's own flags as comments before it) and exit; required flags may be "
                             "left out")


def own_values(parser: jsonargparse.ArgumentParser, args: jsonargparse.Namespace) -> dict[str, Any]:
    """The parsed values of a command's own flags and positionals (not the experiment config's, not ``--help``)."""
    skip = {"help", "print_config", "config", *TOP_LEVEL, *SECTIONS}
    values: dict[str, Any] = {}
    for action in parser._actions:
        if action.dest in skip or "." in action.dest or action.help == argparse.SUPPRESS:
            continue
        values[action.dest] = getattr(args, action.dest, None)
    return values


def show_given_values(parser: jsonargparse.ArgumentParser, argv: Sequence[str]) -> None:
    """Make the values given in ``argv`` (beside ``--help``) the defaults that ``--help`` shows, marked "given".

    ``argv`` is parsed once without ``--help`` and with no flag required; if that fails (a value that does not
    parse), nothing changes and the help shows the values of the config file or the built-in defaults.
    """
    rest = [word for word in argv if word not in HELP_FLAGS]
    if not rest:
        return
    required = [action for action in parser._actions if action.required]
    for action in required:
        action.required = False
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            args = parser.parse_args(rest)
    except (SystemExit, Exception):  # the real parse (with --help) prints the help with the defaults instead
        return
    finally:
        for action in required:
            action.required = True
    for action in parser._actions:
        if action.dest in ("help", "print_config") or action.help == argparse.SUPPRESS or action.dest in SECTIONS:
            continue
        try:
            value = args[action.dest]
        except KeyError:
            continue
        if value != action.default:
            action.default = value
            setattr(action, GIVEN, True)


def _short_flag(key: str) -> str:
    return "--" + key.rsplit(".", 1)[-1].replace("_", "-")


def _leaves(cls: type, prefix: str) -> list[tuple[str, Any]]:
    """(dotted key, annotation) of every leaf field of the dataclass ``cls`` under ``prefix``."""
    hints = typing.get_type_hints(cls)
    out: list[tuple[str, Any]] = []
    for f in dataclasses.fields(cls):
        key = f"{prefix}.{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            out.extend(_leaves(hints[f.name], key))
        else:
            out.append((key, hints[f.name]))
    return out


def _add_short_form(parser: jsonargparse.ArgumentParser, key: str, annotation: Any) -> str:
    """Add the short flag of ``key`` (hidden from the flag list; the epilog names it); return the flag."""
    flag = _short_flag(key)
    kwargs: dict[str, Any] = {"dest": key, "default": argparse.SUPPRESS, "help": argparse.SUPPRESS}
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation)
        kwargs.update(nargs="+", type=item)
    elif annotation is bool:
        kwargs.update(nargs="?", const=True, type=bool)  # a bare --video means --video true
    else:
        kwargs.update(type=annotation)
    parser.add_argument(flag, **kwargs)
    return flag


def add_config_arguments(parser: jsonargparse.ArgumentParser, sections: Sequence[str],
                         top_level: Sequence[str] = TOP_LEVEL, short: str | None = None,
                         top_level_help: typing.Mapping[str, str] | None = None) -> None:
    """Add ``--config``, the flags of the ``top_level`` keys (their help from ``top_level_help`` where given) and
    of every key of ``sections``, and the short forms of the keys of section ``short``."""
    group = parser.add_argument_group("experiment config (YAML file and top-level keys)")
    group.add_argument("--config", default=None, metavar="YAML",
                       help="experiment config file; the flags below override its values")
    hints = typing.get_type_hints(ExperimentConfig)
    for key in top_level:
        kwargs: dict[str, Any] = {"dest": key, "help": (top_level_help or {}).get(key, _TOP_LEVEL_HELP[key])}
        if typing.get_origin(hints[key]) is list:
            (item,) = typing.get_args(hints[key])
            kwargs.update(nargs="+", type=item, metavar=key.upper()[:-1])
        else:
            kwargs.update(type=hints[key], metavar=key.upper())
        group.add_argument(*_TOP_LEVEL_FLAGS[key], **kwargs)
    for section in sections:
        parser.add_class_arguments(SECTIONS[section], section, sub_configs=False)
    if short is not None:
        flags = [_add_short_form(parser, key, annotation) for key, annotation in _leaves(SECTIONS[short], short)]
        parser.epilog = (parser.epilog or "") + (
            f"\nShort forms of the {short} keys: " + ", ".join(
                f"{flag} = --{key}" for flag, (key, _) in zip(flags, _leaves(SECTIONS[short], short))) + "\n")


def section_keys(sections: Sequence[str]) -> list[str]:
    """The keys of ``sections`` that take a whole mapping (a section file or an inline mapping): each section and
    every dataclass inside it, e.g. ``pretrain``, ``pretrain.model``, ``pretrain.muse``."""
    keys: list[str] = []

    def walk(cls: type, key: str) -> None:
        keys.append(key)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                walk(hints[f.name], f"{key}.{f.name}")

    for section in sections:
        walk(SECTIONS[section], section)
    return keys


def _section_class(key: str) -> type:
    """The dataclass of the section key ``key`` (``pretrain.model`` -> ModelConfig)."""
    section, *rest = key.split(".")
    cls = SECTIONS[section]
    for name in rest:
        cls = typing.get_type_hints(cls)[name]
    return cls


def _check_keys(cls: type, data: dict[str, Any], prefix: str) -> None:
    """Refuse a key of ``data`` (recursively into nested sections) that ``cls`` does not have, with the valid keys
    and a did-you-mean, as :func:`gmc_rl.config.from_dict` does (values are checked later, in the full config)."""
    from gmc_rl.errors import ConfigError

    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key, value in data.items():
        if key not in names:
            raise ConfigError(f"unknown config key '{prefix}.{key}'; valid keys in '{prefix}' are {names}."
                              f"{suggest(str(key), names)}")
        if dataclasses.is_dataclass(hints[key]) and isinstance(value, dict):
            _check_keys(hints[key], value, f"{prefix}.{key}")


def _is_inline_mapping(value: str) -> bool:
    """Whether the value of a section flag is a mapping written out (``'{"epochs": 3}'``, ``'epochs: 3'``) rather
    than the name of a section file."""
    text = value.strip()
    return text.startswith("{") or "\n" in text or ": " in text or text.endswith(":")


@dataclass
class SectionFile:
    """A section file read from the command line: its flag (``--pretrain``), path, and the values it sets by dotted
    config key (``pretrain.epochs`` -> ``-3``), so that an error about one of those values can name the file."""

    flag: str
    path: str
    values: dict[str, Any]

    def blame(self, message: str) -> str | None:
        """``message`` led by this file's name when it is about a value this file sets, else None.

        The message is about the last config key it names; it is this file's value when the file sets that key and
        the value the message quotes is the file's (a later flag may have replaced it). A value jsonargparse cannot
        load is reported with the whole inline mapping first ("config key 'pretrain': Unable to load config
        '{...}'; config key 'pretrain.epochs': expected int, got abc"); only the part about the key is kept.
        """
        named = re.findall(r"config key '([^']+)'", message)
        if not named or named[-1] not in self.values:
            return None
        about = message[message.rindex(f"config key {named[-1]!r}"):]
        if str(self.values[named[-1]]) not in about.split(":", 1)[1]:
            return None
        return f"{self.flag} section file {self.path}: {about}"


def blame_section_file(message: str, files: Sequence[SectionFile]) -> str:
    """``message``, naming the section file that set the key it is about (the last file given wins, as on the
    command line), or unchanged when no section file set it."""
    for file in reversed(files):
        blamed = file.blame(message)
        if blamed is not None:
            return blamed
    return message


def _dotted_values(data: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The leaf values of a nested mapping by dotted key (``{"model": {"latent_dim": 4}}`` -> ``model.latent_dim``)."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            values.update(_dotted_values(value, f"{prefix}.{key}"))
        else:
            values[f"{prefix}.{key}"] = value
    return values


def read_section_files(argv: Sequence[str], sections: Sequence[str], files: list[SectionFile] | None = None
                       ) -> list[str]:
    """``argv`` with every section file (``--pretrain FILE``, ``--pretrain=FILE``, ``--pretrain.model FILE``) read
    and put in its place as an inline mapping, before jsonargparse sees it. Each file read is appended to ``files``
    (when given), for :func:`blame_section_file` to name it in a later error about one of its values.

    The file is read as ``--config`` is (:func:`gmc_rl.config.load_yaml`: size cap, a regular file only, so neither
    a FIFO nor ``/dev/zero`` can hang the command, and an empty or comments-only file is no section) and must hold
    a mapping. Errors are one :class:`ConfigError` naming the flag and the file. (jsonargparse would otherwise read
    the file itself: unbounded, blocking on a FIFO, and keeping its path as an unknown key ``__path__``.)
    """
    from gmc_rl.config import load_yaml
    from gmc_rl.errors import ConfigError

    flags = {f"--{key}" for key in section_keys(sections)}
    out: list[str] = []
    words = list(argv)
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            out.extend(words[i:])
            break
        flag, eq, value = word.partition("=")
        if flag in flags and (eq or (i + 1 < len(words) and not words[i + 1].startswith("--"))):
            if not eq:
                i += 1
                value = words[i]
            if not _is_inline_mapping(value):
                what = f"{flag} section file"
                data = load_yaml(value, what, key_prefix=flag[2:])
                if not isinstance(data, dict):
                    raise ConfigError(f"{what} {value} must hold a mapping of {flag[2:]} keys (key: value lines), "
                                      f"got {type(data).__name__}: {str(data)[:80]}")
                try:
                    _check_keys(_section_class(flag[2:]), data, flag[2:])
                except ConfigError as exc:
                    raise ConfigError(f"{what} {value}: {exc}") from None
                if files is not None:
                    files.append(SectionFile(flag, value, _dotted_values(data, flag[2:])))
                value = dump_yaml(data, default_flow_style=True, width=float("inf"), sort_keys=False).strip()
            out.append(f"{flag}={value}")
        else:
            out.append(word)
        i += 1
    return out


def set_config_defaults(parser: jsonargparse.ArgumentParser, config: ExperimentConfig, sections: Sequence[str],
                        top_level: Sequence[str] = TOP_LEVEL) -> None:
    """Make ``config``'s values the defaults of the config flags (a flag then overrides only its key)."""
    data = to_dict(config)
    defaults: dict[str, Any] = {key: data[key] for key in top_level}
    for section in sections:
        defaults.update({key: _get(data, key) for key, _ in _leaves(SECTIONS[section], section)})
    parser.set_defaults(defaults)


def _get(data: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def config_from_args(args: jsonargparse.Namespace, base: ExperimentConfig, sections: Sequence[str],
                     top_level: Sequence[str] = TOP_LEVEL, files: Sequence[SectionFile] = ()) -> ExperimentConfig:
    """``base`` with the parsed values of the top-level keys and ``sections`` (checked like a YAML file); an error
    about a value that a section file in ``files`` set names that file."""
    from gmc_rl.errors import ConfigError

    data = to_dict(base)
    values = args.as_dict()
    for key in top_level:
        data[key] = values[key]
    for section in sections:
        data[section] = values[section]
    try:
        return from_dict(ExperimentConfig, data)
    except ConfigError as exc:
        blamed = blame_section_file(str(exc), files)
        if blamed == str(exc):
            raise
        raise ConfigError(blamed) from None

"""Flag values read the way a config file reads them: the check made before jsonargparse parses a command line.

A number flag is refused where YAML 1.1 and a flag would read the same text as different numbers (``010``,
``1:30``, ``0x1F``), and the values inside a mapping flag (``--env-kwargs``, ``--agent.hyperparams``) stay as the
strict YAML loader read them (jsonargparse would read a quoted ``"1e3"`` again as a number). A list flag takes
words or one bracket list (``--seeds 0 10``, ``--evaluate.conditions '[complete,sound]'``, either form for every
list flag); a mapping, or a quoted number in a number list, is refused as a config file refuses it, and a refused
list value is answered with both forms. Kept apart from :mod:`gmc_rl.commands.config_flags`, which re-exports every
name.
"""

from __future__ import annotations

import argparse
import copy
import re
import typing
from collections.abc import Iterator, Sequence
from typing import Any

import jsonargparse
import yaml

from gmc_rl.config import (
    AgentConfig,
    CollectConfig,
    EvaluateConfig,
    PretrainConfig,
    StrictLoader,
    number_problem,
)
from gmc_rl.config.files import _Refused

SECTIONS: dict[str, type] = {"collect": CollectConfig, "pretrain": PretrainConfig, "agent": AgentConfig,
                             "evaluate": EvaluateConfig}
"""The config sections, by key, and their dataclasses."""
TOP_LEVEL = ("name", "env_id", "env_kwargs", "seeds", "methods")
"""The experiment's own keys (not in a section)."""


_NUMBER_TYPES = (int, float)


def _value_kind(action: argparse.Action) -> str | None:
    """How :func:`check_flag_values` reads the values of ``action``: ``"number"`` (an int or float flag, or each word
    of a list of them), ``"yaml"`` (a mapping, a list or a section, parsed by the strict loader), or None."""
    if isinstance(action, jsonargparse.ActionConfigFile) or action.nargs == 0:
        return None
    typehint = getattr(action, "_typehint", action.type)
    args = [arg for arg in typing.get_args(typehint) if arg is not type(None)]
    if typing.get_origin(typehint) is typing.Union and len(args) == 1:  # Optional[int]
        typehint = args[0]
    if typehint in _NUMBER_TYPES:
        return "number"
    if typing.get_origin(typehint) in (list, dict) or type(action).__name__ == "_ActionConfigLoad":
        return "yaml"
    return None


def _flag_key(parser: argparse.ArgumentParser, action: argparse.Action, flag: str) -> str:
    """How an error names the flag ``flag`` of ``action``: its config key, or the flag itself."""
    if action.dest in TOP_LEVEL or action.dest in SECTIONS or "." in action.dest:
        return f"config key {action.dest!r}"
    return f"argument {flag}"


def _flag_values(parser: argparse.ArgumentParser, argv: Sequence[str]
                 ) -> Iterator[tuple[str, argparse.Action, str, int, str]]:
    """(flag, action, kind, index, text) of every value in ``argv`` of a flag :func:`_value_kind` reads, in order
    (``index``: the word's place among the flag's values, for ``--seeds 0 1``)."""
    actions = {flag: action for action in parser._actions for flag in action.option_strings}
    i = 0
    while i < len(argv):
        word = argv[i]
        i += 1
        if word == "--":
            return
        flag, eq, value = word.partition("=")
        action = actions.get(flag) if flag.startswith("--") else None
        kind = None if action is None else _value_kind(action)
        if action is None or kind is None:
            continue
        values = [value] if eq else []
        while not eq and i < len(argv) and not argv[i].startswith("--") and (
                not values or action.nargs in ("+", "*")):
            values.append(argv[i])
            i += 1
        for index, text in enumerate(values):
            yield flag, action, kind, index, text


def _is_list_flag(action: argparse.Action) -> bool:
    """Whether ``action`` is a config key given as several words (``--seeds 0 1 2``, ``--methods gmc state``,
    ``--conditions complete sound``): the flags whose bracket form :func:`expand_bracket_lists` spells out."""
    config_key = action.dest in TOP_LEVEL or "." in action.dest
    return config_key and action.nargs in ("+", "*")


def _element_type(action: argparse.Action) -> Any:
    """The type of each value of a list config key's flag (int for ``--seeds`` and
    ``--pretrain.model.conv_channels``, str for ``--methods``), or None for any other flag."""
    typehint = getattr(action, "_typehint", action.type)
    if _is_list_flag(action):
        return typehint
    if (action.dest in TOP_LEVEL or "." in action.dest) and typing.get_origin(typehint) is list:
        return typing.get_args(typehint)[0]
    return None


def _is_quoted(text: str) -> bool:
    """Whether ``text`` is one quoted scalar (``"0"``, ``'0'``): text, whatever it holds."""
    text = text.strip()
    return len(text) >= 2 and text[0] == text[-1] and text[0] in "'\""


def _bracket_items(text: str, keep_quotes: bool = False) -> list[str] | None:
    """The items of a flat bracket list ``[a, b]`` as words (quotes around an item removed unless ``keep_quotes``:
    a number list's quoted item is text, refused by :func:`check_flag_values`), or None when an item is empty or
    itself a list or mapping."""
    items = [item.strip() for item in text.strip()[1:-1].split(",")]
    if items == [""]:
        return None
    words = []
    for item in items:
        if _is_quoted(item) and not keep_quotes:
            item = item[1:-1]
        if not item or any(mark in item for mark in "[]{}"):
            return None
        words.append(item)
    return words


def expand_bracket_lists(parser: argparse.ArgumentParser, argv: Sequence[str]) -> tuple[list[str], str | None]:
    """``argv`` with each bracket list of a several-word flag spelled out as its words (``--seeds [0,1]`` ->
    ``--seeds 0 1``), and why one is refused (or None).

    The dotted list keys take a list in brackets (``--evaluate.conditions [complete,sound]``) while their short
    forms and ``--seeds``/``--methods`` take words, and jsonargparse refused ``--seeds [10]`` as "element 1:
    expected int, got [10]" (and read ``--methods [gmc,state]`` as one method named "[gmc,state]"). Both forms now
    mean the same, and the words then meet the checks of words (``--seeds [010]`` is refused as ``--seeds 010``
    is, with advice that works). An empty or nested list is refused with the accepted forms.
    """
    actions = {flag: action for action in parser._actions for flag in action.option_strings}
    out: list[str] = []
    current: argparse.Action | None = None
    flag = ""
    for index, word in enumerate(argv):
        if word == "--":  # the rest are positional words
            return out + list(argv[index:]), None
        if word.startswith("--"):
            flag, eq, value = word.partition("=")
            action = actions.get(flag)
            current = action if action is not None and _is_list_flag(action) else None
            if current is None or not eq:
                out.append(word)
                continue
            out.append(flag)
            word = value
        opens, closes = word.strip().startswith("["), word.strip().endswith("]")
        if current is None or not (opens or closes):
            out.append(word)
            continue
        number = _element_type(current) in _NUMBER_TYPES
        items = _bracket_items(word, keep_quotes=number) if opens and closes else None
        if items is None:
            return out, _bracket_problem(current, flag, word, split=opens != closes)
        out.extend(items)
    return join_list_words(parser, out), None


def join_list_words(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``argv`` with the words after a dotted list flag joined into its one bracket list
    (``--evaluate.conditions complete sound`` -> ``--evaluate.conditions '[complete, sound]'``).

    jsonargparse takes one value for these flags and refused words as "expected list, got complete", while
    ``--seeds 0 10`` and the short forms (``--conditions complete sound``) take words. A value that is already a
    bracket list or a mapping (``[4]``, ``{4}``) is left to the checks of :func:`check_flag_values`.
    """
    actions = {flag: action for action in parser._actions for flag in action.option_strings}
    out: list[str] = []
    index = 0
    while index < len(argv):
        word = argv[index]
        index += 1
        if word == "--":
            return out + [word, *argv[index:]]
        flag, eq, value = word.partition("=")
        action = actions.get(flag)
        if action is None or action.nargs is not None or _element_type(action) is None:
            out.append(word)
            continue
        if eq:  # --evaluate.conditions=complete: one value
            out.append(word if value.lstrip().startswith(("[", "{")) else f"{flag}=[{value}]")
            continue
        out.append(word)
        words = []
        while index < len(argv) and not argv[index].startswith("--") and argv[index] not in ("-h", "-"):
            words.append(argv[index])
            index += 1
        if len(words) == 1 and words[0].lstrip().startswith(("[", "{")):
            out.extend(words)
        elif words:
            out.append(f"[{', '.join(item.rstrip().rstrip(',') for item in words)}]")  # complete, sound
    return out


def _bracket_problem(action: argparse.Action, flag: str, word: str, split: bool) -> str:
    """Why the bracket word ``word`` of ``flag`` is refused (``split``: half a list, the shell having split
    ``[0, 1]`` at its space), with both accepted forms."""
    if split:
        what = "is half a list (quote a list that holds spaces)"
    else:
        what = "lists no value" if not word.strip()[1:-1].strip() else "is not a flat list of values"
    return f"config key {action.dest!r}: {flag} {word} {what}; {list_forms(action, flag)}"


def list_forms(action: argparse.Action, flag: str, lead: str = "give the values") -> str:
    """The two accepted forms of the list flag ``flag`` of ``action``, after ``lead``, for a message that refuses
    its value."""
    example = _EXAMPLES.get(action.dest, ("A", "B"))
    return (f"{lead} separated by spaces ({flag} {' '.join(example)}) or as one quoted list "
            f"({flag} '[{', '.join(example)}]')")


def with_list_forms(parser: argparse.ArgumentParser, message: str) -> str:
    """``message`` followed by the accepted forms of the list flag it names when it is jsonargparse's type error
    about its value ("config key 'seeds[1]': expected int, got x"); other messages unchanged."""
    match = re.match(r"config key '([\w.]+)(?:\[\d+\])?': expected ", message)
    listed = [action for action in parser._actions
              if match and action.dest == match.group(1) and action.option_strings and _element_type(action)]
    if not listed or "or as one quoted list" in message:
        return message
    dotted = [action for action in listed if action.option_strings[0] == f"--{action.dest}"]
    action = (dotted or listed)[0]
    return f"{message}; {list_forms(action, action.option_strings[0])}"


_EXAMPLES = {"seeds": ("0", "10"), "methods": ("gmc", "state"), "evaluate.conditions": ("complete", "sound"),
             "evaluate.encoding_rules": ("mean", "projection"), "pretrain.model.conv_channels": ("8", "16"),
             "pretrain.model.mlp_hidden": ("64", "64")}
"""Two values of each several-word flag, for the message that shows its accepted forms."""


def _strict_load(text: str, key: str) -> Any:
    """``text`` parsed by :class:`~gmc_rl.config.StrictLoader`, its refusals naming config key ``key``."""
    loader = StrictLoader(text)
    loader.key_prefix = key
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def check_flag_values(parser: argparse.ArgumentParser, argv: Sequence[str]) -> str | None:
    """Why a value in ``argv`` is refused, or None: read as a config file reads it.

    jsonargparse reads a number flag with its own YAML loader (``--collect.steps 1:30`` was 90, ``--pretrain.lr
    0x10`` 16) and Python's ``int`` (``010`` was 10, while a config file's ``010`` was 8), and it hides the
    strict loader's refusal of a mapping or list value behind "expected dict" (``--agent.hyperparams
    '{"gamma": 0.9, "gamma": 0.5}'``, a key given twice). Here every number flag's value is checked with
    :func:`gmc_rl.config.number_problem` and every mapping, list or section value is parsed with
    :class:`~gmc_rl.config.StrictLoader` first: a YAML 1.1 number form or a duplicate key is named with its config
    key. Values jsonargparse cannot parse at all are left to its own message.
    """
    for flag, action, kind, index, text in _flag_values(parser, argv):
        key = _flag_key(parser, action, flag)
        problem = _list_problem(action, flag, index, text)
        if problem is not None:
            return problem
        if kind == "number" and not text.lstrip().startswith("["):  # '[010]' is a YAML list: checked below
            problem = number_problem(text, flag=True)
            if problem is not None:
                if action.nargs in ("+", "*") and key.startswith("config key "):
                    key = f"config key '{action.dest}[{index}]'"
                return f"{key}: {problem}"
            continue
        try:
            _strict_load(text, action.dest)
        except _Refused as exc:
            problem = str(exc.problem)
            return problem if problem.startswith("config key ") else f"{key}: {problem}"
        except yaml.YAMLError:
            continue  # not YAML at all: jsonargparse's message says what it expected
    return None


def _list_problem(action: argparse.Action, flag: str, index: int, text: str) -> str | None:
    """Why ``text``, a value of the list flag ``flag`` (``index``: its place among the flag's words), is refused
    before jsonargparse reads it, or None.

    A mapping (``--seeds '{0}'`` was refused with a Python TypeError's text, ``--pretrain.model.conv_channels
    '{4}'`` with "keys must be strings; quote it", which cannot help), and a quoted number in a number list
    (``--seeds '"0"'``, ``'["0"]'``): jsonargparse read it as the number, while a config file refuses the text.
    """
    element = _element_type(action)
    if element is None:
        return None
    if text.strip().startswith("{"):
        return f"config key {action.dest!r}: {flag} {text} is a mapping, not a list; {list_forms(action, flag)}"
    if element not in _NUMBER_TYPES:
        return None
    if _is_list_flag(action):  # one word of --seeds 0 10 (or of a bracket list spelled out)
        texts = [(index, text.strip()[1:-1])] if _is_quoted(text) else []
    else:
        texts = _text_items(text, action.dest)
    for at, item in texts:
        if _reads_as_number(item):
            what = "an integer" if element is int else "a number"
            return (f"config key '{action.dest}[{at}]': must be {what}, got the quoted text {item!r}, which a config "
                    f"file refuses too; {list_forms(action, flag, 'write the numbers without quotes,')}")
    return None


def _text_items(text: str, key: str) -> list[tuple[int, str]]:
    """(place, item) of each text item of the bracket list ``text`` (a dotted list flag's value); none where
    ``text`` is not a list."""
    try:
        value = _strict_load(text, key)
    except (_Refused, yaml.YAMLError):  # refused below with its own message, or left to jsonargparse's
        return []
    return [(at, item) for at, item in enumerate(value) if isinstance(item, str)] if isinstance(value, list) else []


def _reads_as_number(text: str) -> bool:
    """Whether the strict loader reads ``text`` as a number (not a bool)."""
    try:
        value = _strict_load(text, "")
    except (_Refused, yaml.YAMLError):
        return False
    return isinstance(value, _NUMBER_TYPES) and not isinstance(value, bool)


def _any_mapping(action: argparse.Action) -> bool:
    """Whether ``action`` is a config key whose value is a mapping of any values (``env_kwargs``,
    ``agent.hyperparams``)."""
    typehint = getattr(action, "_typehint", None)
    return typing.get_origin(typehint) is dict and "Any" in str(typehint)


def keep_mapping_values(parser: argparse.ArgumentParser, argv: Sequence[str], args: jsonargparse.Namespace) -> None:
    """Put back in ``args`` the values of the mapping keys of any values (``env_kwargs``, ``agent.hyperparams``,
    ``collect.focus_reset_options``) as the strict loader read them.

    jsonargparse parses every string inside such a mapping again, as if it were a flag of its own: a config file's
    quoted ``label: "1e3"`` became 1000.0, ``"010"`` 10, ``"off"`` false and ``"[1, 2]"`` a list, and a flag's JSON
    ``{"label": "010"}`` likewise. Each such key gets the value of the last flag in ``argv`` that sets it (its own
    flag, or a section mapping that holds it, as jsonargparse takes them: a later one replaces an earlier one
    whole), else its default (the base config's value).
    """
    keys = {action.dest: action for action in parser._actions  # not the short forms, whose default is SUPPRESS
            if _any_mapping(action) and action.default != argparse.SUPPRESS}
    if not keys:
        return
    given: dict[str, Any] = {}
    for _, action, kind, _, text in _flag_values(parser, argv):
        if kind != "yaml" or not (action.dest in keys or any(key.startswith(f"{action.dest}.") for key in keys)):
            continue
        try:
            value = _strict_load(text, action.dest)
        except yaml.YAMLError:
            continue
        if action.dest in keys:
            given[action.dest] = value
            continue
        for key in keys:
            if key.startswith(f"{action.dest}."):
                found, inner = True, value
                for part in key[len(action.dest) + 1:].split("."):
                    found = isinstance(inner, dict) and part in inner
                    inner = inner[part] if found else None
                    if not found:
                        break
                if found:
                    given[key] = inner
    for key, action in keys.items():
        try:
            args[key]
        except KeyError:
            continue
        args[key] = copy.deepcopy(given[key] if key in given else action.default)

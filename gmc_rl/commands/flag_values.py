"""Flag values read the way a config file reads them: the check made before jsonargparse parses a command line.

A number flag is refused where YAML 1.1 and a flag would read the same text as different numbers (``010``,
``1:30``, ``0x1F``), and the values inside a mapping flag (``--env-kwargs``, ``--agent.hyperparams``) stay as the
strict YAML loader read them (jsonargparse would read a quoted ``"1e3"`` again as a number). Kept apart from
:mod:`gmc_rl.commands.config_flags`, which re-exports every name.
"""

from __future__ import annotations

import argparse
import copy
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


def _bracket_items(text: str) -> list[str] | None:
    """The items of a flat bracket list ``[a, b]`` as words (quotes around an item removed), or None when an item
    is empty or itself a list or mapping."""
    items = [item.strip() for item in text.strip()[1:-1].split(",")]
    if items == [""]:
        return None
    words = []
    for item in items:
        if len(item) >= 2 and item[0] == item[-1] and item[0] in "'\"":
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
        items = _bracket_items(word) if opens and closes else None
        if items is None:
            return out, _bracket_problem(current, flag, word, split=opens != closes)
        out.extend(items)
    return out, None


def _bracket_problem(action: argparse.Action, flag: str, word: str, split: bool) -> str:
    """Why the bracket word ``word`` of ``flag`` is refused (``split``: half a list, the shell having split
    ``[0, 1]`` at its space), with both accepted forms."""
    example = _EXAMPLES.get(action.dest, ("A", "B"))
    if split:
        what = "is half a list (quote a list that holds spaces)"
    else:
        what = "lists no value" if not word.strip()[1:-1].strip() else "is not a flat list of values"
    return (f"config key {action.dest!r}: {flag} {word} {what}; give the values separated by spaces "
            f"({flag} {' '.join(example)}) or as one quoted list ({flag} '[{', '.join(example)}]')")


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

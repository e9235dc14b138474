"""Typed configuration of every stage, loaded from YAML with strict validation.

One :class:`ExperimentConfig` describes a whole run (collect -> pretrain -> train -> evaluate). Each stage reads its
own section. The same dataclasses generate the command-line flags
(:func:`gmc_rl.commands.config_flags.add_config_arguments`), so every CLI flag has a config key and every config key
has a flag: ``pretrain.batch_size`` is ``--batch-size`` on ``gmc-rl pretrain``, ``pretrain.model.latent_dim`` is
``--latent-dim``, ``env_id`` is ``--env``.

Unknown or mistyped keys raise :class:`~gmc_rl.errors.ConfigError` listing the valid keys; values out of range
(zero epochs, a temperature <= 0, a probability outside [0, 1] ...) raise it naming the key.

The package, one job per module (each imports only those listed before it); every public name is importable from
``gmc_rl.config`` itself:

- :mod:`~gmc_rl.config.checks`: ``_require`` (the ``config key 'KEY': ...`` error) and the number tests the others
  share;
- :mod:`~gmc_rl.config.limits`: the ``MAX_*`` resource caps, the machine's memory and the checks of sizes against
  them (:func:`check_memory`, :func:`check_reference_latents`, :func:`check_batch_size`, :func:`space_bytes`,
  :func:`check_gathered_steps`, :func:`check_gathered_memory`);
- :mod:`~gmc_rl.config.hyperparams`: the allowed values of the SB3 hyperparameters per algorithm
  (:data:`HYPERPARAM_CHECKS`, :func:`check_hyperparams`), :func:`merge_hyperparams`, and :data:`OFF_POLICY`;
- :mod:`~gmc_rl.config.conversion`: dict <-> dataclass (:func:`from_dict`, :func:`to_dict`) with strict checking;
- :mod:`~gmc_rl.config.schema`: the section dataclasses (:class:`CollectConfig`, :class:`ModelConfig`,
  :class:`MUSEConfig`, :class:`PretrainConfig`, :class:`AgentConfig`, :class:`EvaluateConfig`,
  :class:`ExperimentConfig`) and the checks of their values;
- :mod:`~gmc_rl.config.stored`: :func:`stored_config`, a run's own stored config, with :data:`KEYS_ADDED_LATER`;
- :mod:`~gmc_rl.config.identity`: what decides a stage's output (:func:`collect_identity`,
  :func:`pretrain_identity`, :func:`agent_identity`) and :func:`config_hash`;
- :mod:`~gmc_rl.config.files`: the strict YAML loader (:class:`StrictLoader`, :func:`load_yaml`,
  :func:`number_problem`), the dumper it reads back (:func:`dump_yaml`), :func:`load_config` and
  :func:`default_config_path`;
- :mod:`~gmc_rl.config.env_kwargs`: checks against the Gymnasium registry (:func:`registered_env_ids`,
  :func:`check_env_kwargs`).
"""

from __future__ import annotations

from gmc_rl.config.conversion import from_dict, to_dict
from gmc_rl.config.env_kwargs import check_env_kwargs, registered_env_ids
from gmc_rl.config.files import (
    StrictLoader,
    default_config_path,
    dump_yaml,
    load_config,
    load_yaml,
    number_problem,
)
from gmc_rl.config.hyperparams import HYPERPARAM_CHECKS, OFF_POLICY, check_hyperparams, merge_hyperparams
from gmc_rl.config.identity import ACTION_FIT_KEYS, agent_identity, collect_identity, config_hash, pretrain_identity
from gmc_rl.config.limits import (
    MAX_BUFFER_SIZE,
    MAX_COLLECT_STEPS,
    MAX_CONFIG_BYTES,
    MAX_CONFIG_DEPTH,
    MAX_DATA_BYTES,
    MAX_DIAGNOSTIC_STEPS,
    MAX_ENVS,
    MAX_EPISODES,
    MAX_GATHERED_STEPS,
    MAX_LAYER_WIDTH,
    MAX_LAYERS,
    MAX_MODEL_PARAMETERS,
    MAX_NAME_BYTES,
    MAX_PRETRAIN_BATCH,
    MAX_REFERENCE_BYTES,
    MAX_REFERENCE_LATENTS,
    MAX_SB3_BATCH,
    check_batch_size,
    check_gathered_memory,
    check_gathered_steps,
    check_memory,
    check_reference_latents,
    format_bytes,
    space_bytes,
    system_memory,
)
from gmc_rl.config.schema import (
    DISTILL_TEACHERS,
    ENCODING_RULES,
    AgentConfig,
    CollectConfig,
    EvaluateConfig,
    ExperimentConfig,
    ModelConfig,
    MUSEConfig,
    PretrainConfig,
    check_plain_name,
)
from gmc_rl.config.stored import KEYS_ADDED_LATER, stored_config

__all__ = [
    # schema
    "CollectConfig", "ModelConfig", "MUSEConfig", "PretrainConfig", "AgentConfig", "EvaluateConfig",
    "ExperimentConfig", "DISTILL_TEACHERS", "ENCODING_RULES", "check_plain_name",
    # limits
    "MAX_NAME_BYTES", "MAX_CONFIG_BYTES", "MAX_CONFIG_DEPTH", "MAX_LAYER_WIDTH", "MAX_LAYERS", "MAX_MODEL_PARAMETERS",
    "MAX_ENVS", "MAX_COLLECT_STEPS", "MAX_DATA_BYTES", "MAX_REFERENCE_LATENTS", "MAX_REFERENCE_BYTES",
    "MAX_PRETRAIN_BATCH", "MAX_EPISODES", "MAX_DIAGNOSTIC_STEPS", "MAX_BUFFER_SIZE", "MAX_SB3_BATCH",
    "MAX_GATHERED_STEPS",
    "system_memory", "format_bytes", "check_reference_latents", "space_bytes", "check_memory", "check_batch_size",
    "check_gathered_steps", "check_gathered_memory",
    # hyperparams
    "HYPERPARAM_CHECKS", "OFF_POLICY", "check_hyperparams", "merge_hyperparams",
    # conversion and stored runs
    "from_dict", "to_dict", "KEYS_ADDED_LATER", "stored_config",
    # identity
    "ACTION_FIT_KEYS", "collect_identity", "pretrain_identity", "agent_identity", "config_hash",
    # files
    "StrictLoader", "load_yaml", "dump_yaml", "number_problem", "load_config", "default_config_path",
    # env_kwargs
    "registered_env_ids", "check_env_kwargs",
]

"""The GMC model for any number of modalities: base encoders, a joint encoder and one shared projection head.

The architecture follows the GMC paper (Poklukar et al., ICML 2022) and is generic over the modalities of a
``Dict`` observation space (see :mod:`gmc_rl.modalities`):

- each modality m has a :class:`Preprocessor` (uint8 images are scaled by 1/255; vectors are standardised with
  the mean/std of the training data, stored in the model as buffers) and a base encoder f_m built by
  :func:`build_modality_encoder`: a feature trunk (a conv stack for images, an MLP for vectors) followed by a
  linear layer to the common dimension d;
- the joint encoder f_{1:M} has its own trunk for every modality; their features are concatenated and mapped
  by one linear layer to d;
- the shared head g maps d -> head_hidden (activation) -> k, and the output is L2-normalised.

With the default :class:`~gmc_rl.config.ModelConfig` this is exactly the paper's pendulum model (image trunk
Conv(2->32) / Conv(32->64), kernel 4, stride 2, padding 1, Swish; sound trunk MLP 12 -> 50 -> 50, Swish;
d = 64, head 64 -> 128 -> 10).

Example:
    >>> import numpy as np
    >>> from gymnasium import spaces
    >>> from gmc_rl.config import ModelConfig
    >>> space = spaces.Dict({"image": spaces.Box(0, 255, (2, 16, 16), np.uint8),
    ...                      "sound": spaces.Box(-1, 1, (2, 3, 2), np.float32)})
    >>> model = GMCModel.from_space(space, ModelConfig())
    >>> obs = {name: np.stack([space[name].sample() for _ in range(4)]) for name in ("image", "sound")}
    >>> model.encode(obs).shape, model.encode(obs, ["sound"]).shape
    (torch.Size([4, 10]), torch.Size([4, 10]))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn

from gmc_rl.config import ENCODING_RULES, ModelConfig, check_reference_latents, from_dict
from gmc_rl.data import finite_json
from gmc_rl.errors import ModalityError, SensorValueError
from gmc_rl.modalities import (
    ModalitySpec,
    check_array_storage,
    check_modalities,
    check_observation_batch,
    is_float_dtype,
    modality_specs,
)
from gmc_rl.model_blocks import (  # noqa: F401  (re-exported: gmc_rl.model is where callers import them)
    JointEncoder,
    Preprocessor,
    ProjectionHead,
    activation,
    build_modality_encoder,
    check_model_inputs,
    check_parameter_count,
    linear_size,
    parameter_count,
    trunk_size,
)

# ----------------------------------------------------------------------------------------------------------------
# What every model over the modalities of a Dict space shares (GMC, the MVAE and MUSE baselines).


_Model = TypeVar("_Model", bound="MultimodalModel")


def unit_tolerance(dtype: torch.dtype, floor: float) -> float:
    """How far from 1 the norm of a unit vector stored in ``dtype`` may be: ``floor``, or twice the dtype's machine
    epsilon where that is larger. Rounding each element to bfloat16 (8 bits of mantissa) moves a unit vector's norm
    by up to half its epsilon (0.0039); float16's and float32's rounding stays within the floors used here."""
    return max(floor, 2 * torch.finfo(dtype).eps)


def _check_unit_latents(latent: Tensor, obs: Mapping[str, Any], names: Sequence[str],
                        specs: Mapping[str, ModalitySpec]) -> Tensor:
    """Return ``latent`` if every row is a unit vector, as the head makes it; else SensorValueError naming the
    modalities' largest values.

    A finite sensor value far outside what the encoder was trained on (a sound of 1e30) overflows inside the
    network: the head then returns a zero or NaN row instead of a latent, which a controller would silently act on.
    """
    norms = latent.detach().float().norm(dim=-1)  # in float32: a bfloat16 norm adds its own rounding
    if bool(torch.isfinite(norms).all()) and bool(((norms - 1.0).abs() < unit_tolerance(latent.dtype, 1e-2)).all()):
        return latent
    largest = []
    for name in names:
        value = obs[name]
        magnitude = float(value.abs().max()) if isinstance(value, Tensor) else float(np.abs(np.asarray(value)).max())
        spec = specs[name]
        largest.append(f"{name!r} largest |value| {magnitude:.3g} (declared range [{spec.low:.3g}, "
                       f"{spec.high:.3g}])")
    raise SensorValueError(f"sensor values too large to encode: the encoder overflowed ({'; '.join(largest)})")


class MultimodalModel(nn.Module):
    """The part GMC and the MVAE and MUSE baselines share: the modalities, one :class:`Preprocessor` and one base
    encoder (:func:`build_modality_encoder`) per modality, the JSON description, and preprocessing of raw batches.

    A subclass checks its inputs first (:func:`check_model_inputs`, :func:`check_parameter_count`: nothing is built
    for an architecture that cannot fit), then calls ``super().__init__`` with the checked specs and statistics, and
    builds its own layers after the base encoders, so a seeded model draws its weights in a fixed order.

    Attributes:
        specs, modalities (list of names, canonical order), config, latent_dim (k), preprocessors, encoders.
    """

    def __init__(self, specs: Mapping[str, ModalitySpec], config: ModelConfig,
                 normalization: Mapping[str, dict] | None = None) -> None:
        super().__init__()
        normalization = normalization or {}
        self.specs = dict(specs)
        self.modalities = list(specs)
        self.config = config
        self.latent_dim = config.latent_dim
        self.preprocessors = nn.ModuleList(
            [Preprocessor(spec, normalization.get(name)) for name, spec in specs.items()]
        )
        self.encoders = nn.ModuleList([build_modality_encoder(spec, config) for spec in specs.values()])

    @classmethod
    def from_space(
        cls: type[_Model],
        observation_space: spaces.Space,
        config: ModelConfig,
        normalization: Mapping[str, dict] | None = None,
    ) -> _Model:
        """A model for the modalities of a ``Dict`` observation space."""
        return cls(modality_specs(observation_space), config, normalization)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def normalization(self) -> dict[str, dict[str, list[float]]]:
        """The standardisation statistics of the vector modalities, as JSON lists."""
        stats = {name: cast(Preprocessor, pre).stats_json() for name, pre in zip(self.modalities, self.preprocessors)}
        return {name: value for name, value in stats.items() if value is not None}

    def _architecture(self) -> dict[str, Any]:
        """The start of every model's JSON description: modality order, specs, architecture and latent size
        (:func:`read_architecture` reads them back)."""
        return {
            "modalities": list(self.modalities),
            "specs": [finite_json(self.specs[name].to_json()) for name in self.modalities],
            "model": dataclasses.asdict(self.config),
            "latent_dim": self.latent_dim,
        }

    def architecture(self) -> dict[str, Any]:
        """JSON description from which :meth:`from_architecture` rebuilds an identical (untrained) model."""
        return {**self._architecture(), "normalization": self.normalization}

    @classmethod
    def from_architecture(cls: type[_Model], data: Mapping[str, Any]) -> _Model:
        """Inverse of :meth:`architecture` (raises KeyError/ValueError subclasses on malformed input)."""
        return cls(*read_architecture(data))

    def preprocess(self, obs: Mapping[str, Any], names: Sequence[str] | None = None,
                   non_blocking: bool = False) -> dict[str, Tensor]:
        """Check a raw batch and return the preprocessed tensors of ``names`` (all by default) on the device.

        ``non_blocking`` is passed to the copy onto the device (GMC's forward paths copy without blocking).
        """
        names = self.modalities if names is None else list(names)
        check_observation_batch(obs, self.specs, names)
        out = {}
        for name in names:
            value = obs[name]
            if not isinstance(value, Tensor):
                value = torch.from_numpy(np.ascontiguousarray(value))
            value = value.to(self.device, non_blocking=non_blocking)
            out[name] = self.preprocessors[self.modalities.index(name)](value)
        return out


def read_architecture(data: Mapping[str, Any]) -> tuple[dict[str, ModalitySpec], ModelConfig, dict | None]:
    """The specs (checked against the modality order), the :class:`ModelConfig` and the normalisation statistics
    (None when there are none) of a JSON description written by ``architecture()`` of any
    :class:`MultimodalModel`.

    Raises:
        ModalityError: the specs are not in the order of ``data["modalities"]``.
        KeyError, ValueError: malformed input (a checkpoint being loaded reports them as a CheckpointError).
    """
    specs = {spec["name"]: ModalitySpec.from_json(spec) for spec in data["specs"]}
    if list(specs) != list(data["modalities"]):
        raise ModalityError(f"specs {list(specs)} do not match the modality order {data['modalities']}")
    return specs, from_dict(ModelConfig, data["model"], "model"), data.get("normalization") or None


# ----------------------------------------------------------------------------------------------------------------
# The model.


class GMCModel(MultimodalModel):
    """Geometric Multimodal Contrastive model over the modalities ``specs`` (canonical order = mapping order).

    Args:
        specs: modality name -> :class:`~gmc_rl.modalities.ModalitySpec` (2 or more).
        config: the architecture.
        normalization: vector modality name -> ``{"mean": [...], "std": [...]}`` of the training data
            (flat lists of ``flat_dim`` values); missing vector modalities are not standardised.

    Attributes:
        specs, modalities (list of names), latent_dim (k), config, normalization (JSON form of the statistics).
    """

    provenance: dict[str, Any]
    """The checkpoint's provenance mapping: set on a model that :func:`gmc_rl.checkpoint.load_gmc` loaded."""
    checkpoint_path: Path
    """The checkpoint directory: set on a model that :func:`gmc_rl.checkpoint.load_gmc` loaded."""

    def __init__(
        self,
        specs: Mapping[str, ModalitySpec],
        config: ModelConfig,
        normalization: Mapping[str, dict] | None = None,
    ) -> None:
        specs, normalization = check_model_inputs(specs, normalization, "GMC")
        check_parameter_count(parameter_count(specs, config), "GMC model")
        super().__init__(specs, config, normalization)
        self.joint_encoder = JointEncoder(list(specs.values()), config)
        self.head = ProjectionHead(config)
        self.reference_latents: Tensor | None
        self.register_buffer("reference_latents", None)  # a buffer once set: saved with the weights
        self.reference_neighbours = 0
        self._rule: str | None = None  # set by encoding_rule(); None: project when reference latents are held

    # -- introspection / serialisation -------------------------------------------------------------------------

    def set_reference_latents(self, latents: Tensor | None, neighbours: int = 5) -> None:
        """Keep complete latents of training observations, onto which partial latents are projected (None: none).

        With reference latents, :meth:`encode` maps the latent of a modality subset to the normalised mean of its
        ``neighbours`` most similar reference latents (cosine). A controller trained on complete latents has only
        seen points of the complete-latent manifold; the mean of single-modality latents lies close to it but off
        it, in directions the controller was never trained on, and some controllers react to those arbitrarily.
        The projection hands them a point of the manifold instead: the complete latents of the states the partial
        observation is most similar to. Without reference latents the paper's rule (the plain mean) applies.
        """
        if latents is None:
            self.reference_latents, self.reference_neighbours = None, 0
            return
        check_array_storage("reference latents", latents)  # byte order, meta, masked, sparse or nested
        if isinstance(latents, np.ndarray) and is_float_dtype(latents.dtype):
            latents = torch.from_numpy(np.ascontiguousarray(latents))  # negative strides are torch's raw error
        if not isinstance(latents, Tensor) or not latents.is_floating_point():
            raise ModalityError(f"reference latents must be a float tensor (or numpy array) of shape (N, "
                                f"{self.latent_dim}), got {type(latents).__name__} {getattr(latents, 'dtype', '')}")
        if latents.ndim != 2 or latents.shape[1] != self.latent_dim or latents.shape[0] < 1:
            raise ModalityError(f"reference latents must have shape (N >= 1, {self.latent_dim}), got "
                                f"{tuple(latents.shape)}")
        if not bool(torch.isfinite(latents).all()):
            raise ModalityError("reference latents contain NaN or inf")
        norms = latents.double().norm(dim=-1)
        if bool((norms < 1e-6).any()):
            raise ModalityError("reference latents contain all-zero rows (latents are unit vectors; the projection "
                                "compares directions)")
        tolerance = unit_tolerance(latents.dtype, 1e-3)  # bfloat16 rounding alone moves a norm by up to 0.004
        off = (norms - 1.0).abs() > tolerance
        if bool(off.any()):
            row = int(off.nonzero()[0, 0])
            raise ModalityError(f"reference latents must be unit vectors (complete latents are normalised, and the "
                                f"projection averages them), but row {row} has norm {float(norms[row]):.6g} (1 ± "
                                f"{tolerance:.3g} allowed for {str(latents.dtype).removeprefix('torch.')}); "
                                "normalise them first")
        if isinstance(neighbours, bool) or not isinstance(neighbours, (int, np.integer)):
            raise ModalityError(f"reference neighbours must be an integer, got {type(neighbours).__name__}")
        if not 1 <= neighbours <= latents.shape[0]:
            raise ModalityError(f"reference neighbours must be in [1, {latents.shape[0]}], got {neighbours}")
        self.reference_latents = latents.detach().to(next(self.head.parameters()))  # the head's device and dtype
        self.reference_neighbours = int(neighbours)

    @property
    def single_sensor_rule(self) -> str:
        """How :meth:`encode` turns a modality subset's latents into one: ``"projection"`` onto the nearest
        reference latents when the model holds them, else ``"mean"`` (the paper's plain mean); see
        :meth:`encoding_rule` to choose another for a while."""
        if self._rule is not None:
            return self._rule
        return "mean" if self.reference_latents is None else "projection"

    @contextmanager
    def encoding_rule(self, rule: str | None) -> Iterator[GMCModel]:
        """Encode modality subsets with ``rule`` (one of :data:`ENCODING_RULES`) inside the ``with`` block.

        ``"mean"`` is the paper's rule (the plain mean of the present modalities' latents) whatever the model holds;
        ``"projection"`` needs reference latents (:meth:`set_reference_latents`). ``None`` keeps the model's own
        rule. The weights and reference latents are untouched: an agent trained on this encoder can be evaluated
        under either rule without retraining. The complete observation always takes the joint path.

        Raises:
            ModalityError: an unknown rule, or ``"projection"`` on a model without reference latents.
        """
        if rule is not None and rule not in ENCODING_RULES:
            raise ModalityError(f"unknown encoding rule {rule!r}; valid: {list(ENCODING_RULES)}")
        if rule == "projection" and self.reference_latents is None:
            raise ModalityError("the 'projection' rule needs reference latents; this model holds none "
                                "(pretrain.reference_latents was 0)")
        previous, self._rule = self._rule, rule
        try:
            yield self
        finally:
            self._rule = previous

    def project(self, latents: Tensor) -> Tensor:
        """The normalised mean of the ``reference_neighbours`` reference latents most similar to each row."""
        if self.reference_latents is None:
            raise ModalityError("this model holds no reference latents to project onto (set_reference_latents)")
        nearest = (latents @ self.reference_latents.T).topk(self.reference_neighbours, dim=1).indices
        return F.normalize(self.reference_latents[nearest].mean(dim=1), dim=-1)

    def architecture(self) -> dict[str, Any]:
        """JSON description from which :meth:`from_architecture` rebuilds an identical (untrained) model."""
        reference = None
        if self.reference_latents is not None:
            reference = {"size": int(self.reference_latents.shape[0]), "neighbours": self.reference_neighbours}
        return {
            **self._architecture(),
            "preprocessing": {
                name: ("scale 1/255" if spec.kind == "image" else "standardise (x - mean) / std")
                for name, spec in self.specs.items()
            },
            "normalization": self.normalization,
            "reference_latents": reference,
        }

    @classmethod
    def from_architecture(cls, data: Mapping[str, Any]) -> GMCModel:
        """Inverse of :meth:`architecture` (raises KeyError/ValueError subclasses on malformed input)."""
        specs, config, normalization = read_architecture(data)
        model = cls(specs, config, normalization)
        reference = data.get("reference_latents")
        if reference is not None:  # the values come with the weights
            if not isinstance(reference, Mapping) or set(reference) != {"size", "neighbours"}:
                raise ModalityError(f"reference_latents must be {{'size': N, 'neighbours': K}}, got {reference!r}")
            size, neighbours = int(reference["size"]), int(reference["neighbours"])
            if size < 1:
                raise ModalityError(f"reference_latents size must be at least 1, got {size}")
            check_reference_latents(size, config.latent_dim, "reference_latents.size")  # bytes, before allocating
            placeholder = torch.full((size, config.latent_dim), config.latent_dim ** -0.5)  # unit rows
            model.set_reference_latents(placeholder, neighbours)
        return model

    # -- forward paths ---------------------------------------------------------------------------------------

    def _inputs(self, obs: Mapping[str, Any], names: Sequence[str]) -> list[Tensor]:
        """Check the batch and return the preprocessed tensors of ``names`` on the model's device."""
        return list(self.preprocess(obs, names, non_blocking=True).values())

    def modality_latents(self, obs: Mapping[str, Any], modalities: Sequence[str] | None = None) -> dict[str, Tensor]:
        """z_m = g(f_m(x_m)) for each requested modality (all by default): name -> (B, k), L2-normalised."""
        names = check_modalities(modalities, self.modalities)
        inputs = self._inputs(obs, names)
        return {
            name: self.head(self.encoders[self.modalities.index(name)](x)) for name, x in zip(names, inputs)
        }

    def joint_latent(self, obs: Mapping[str, Any]) -> Tensor:
        """z_{1:M} = g(f_{1:M}(x_1..x_M)): (B, k), L2-normalised; needs every modality."""
        return self.head(self.joint_encoder(self._inputs(obs, self.modalities)))

    def latents(self, obs: Mapping[str, Any]) -> tuple[dict[str, Tensor], Tensor]:
        """Every modality latent and the joint latent in one pass (preprocessing done once); used for training."""
        inputs = self._inputs(obs, self.modalities)
        per_modality = {name: self.head(encoder(x)) for name, encoder, x in zip(self.modalities, self.encoders, inputs)}
        return per_modality, self.head(self.joint_encoder(inputs))

    def encode(self, obs: Mapping[str, Any], modalities: Sequence[str] | None = None) -> Tensor:
        """The latent used by a controller: (B, k) on the model's device.

        ``modalities`` None (or every modality) -> the joint path g(f_{1:M}(x)); a subset -> the mean of the
        present modalities' latents (as the reference implementation; the mean is not re-normalised), projected
        onto the complete latents of the training data when the model holds them (:meth:`set_reference_latents`)
        unless :meth:`encoding_rule` says ``"mean"``.
        ``obs`` holds raw batches ``(B, *shape)`` as the env emits them (numpy arrays or tensors); keys of absent
        modalities may be missing or hold anything. Unknown or empty modality lists raise ModalityError.
        """
        names = check_modalities(modalities, self.modalities)
        if len(names) == len(self.modalities):
            return _check_unit_latents(self.joint_latent(obs), obs, names, self.specs)
        latents = self.modality_latents(obs, names)
        for name, latent in latents.items():
            _check_unit_latents(latent, obs, [name], self.specs)
        mean = torch.stack(list(latents.values()), dim=0).mean(dim=0)
        return self.project(mean) if self.single_sensor_rule == "projection" else mean

    def forward(self, obs: Mapping[str, Any], modalities: Sequence[str] | None = None) -> Tensor:
        """Same as :meth:`encode`."""
        return self.encode(obs, modalities)

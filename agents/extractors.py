"""Feature extractors for raw ``Dict`` observations: small images, and a cheaper CNN for the raw-observation agent.

SB3's ``MultiInputPolicy`` encodes every image of a ``Dict`` observation with NatureCNN, whose 8x8/stride-4,
4x4/stride-2 and 3x3 convolutions need images of at least 36x36 pixels. :class:`MultimodalExtractor` is the same
combination (a CNN per image, flattening for everything else, features concatenated) with a choice of CNN:
NatureCNN, :class:`SmallCNN` (4x4/stride-2 convolutions, works from 4x4 pixels) or :class:`CompactCNN` (NatureCNN's
first two layers with half the channels: about a quarter of its multiply-adds). :func:`gmc_rl.agents.registry.
build_algorithm` uses it with ``cnn="auto"`` when an image is below NatureCNN's size, and whenever the
hyperparameters name it (``policy_kwargs: {features_extractor_class: multimodal, features_extractor_kwargs: {cnn:
compact}}``), which is how the raw-observation baseline of ``experiments/pendulum_sound.yaml`` is made affordable.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from torch import nn

NATURE_CNN_MIN_SIZE = 36
"""Smallest image height and width NatureCNN accepts."""


class ConvStack(BaseFeaturesExtractor):
    """Convolutions (ReLU after each) given by :attr:`layers`, flattened, and a linear layer with ReLU."""

    layers: tuple[tuple[int, int, int, int], ...] = ()
    """(out channels, kernel size, stride, padding) of each convolution."""

    def __init__(self, observation_space: spaces.Box, features_dim: int = 256, normalized_image: bool = False) -> None:
        super().__init__(observation_space, features_dim)
        modules: list[nn.Module] = []
        channels = observation_space.shape[0]
        for out, kernel, stride, padding in self.layers:
            modules += [nn.Conv2d(channels, out, kernel_size=kernel, stride=stride, padding=padding), nn.ReLU()]
            channels = out
        self.cnn = nn.Sequential(*modules, nn.Flatten())
        with torch.no_grad():
            flat = self.cnn(torch.zeros(1, *observation_space.shape)).shape[1]
        self.linear = nn.Sequential(nn.Linear(flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations))


class SmallCNN(ConvStack):
    """Two 4x4/stride-2 convolutions (32 and 64 channels, ReLU) and a linear layer; works from 4x4 pixels."""

    layers = ((32, 4, 2, 1), (64, 4, 2, 1))


class CompactCNN(ConvStack):
    """NatureCNN's 8x8/stride-4 and 4x4/stride-2 convolutions with 16 and 32 channels (ReLU) and a linear layer.

    On the 60x60 images of PendulumSound it needs about a quarter of NatureCNN's multiply-adds (0.8 M against
    2.8 M per two-frame image); images must be at least 16x16.
    """

    layers = ((16, 8, 4, 0), (32, 4, 2, 0))


CNNS: dict[str, Callable[..., BaseFeaturesExtractor]] = {"nature": NatureCNN, "small": SmallCNN, "compact": CompactCNN}
"""Image CNNs of :class:`MultimodalExtractor` by name (``"auto"``: NatureCNN, or SmallCNN below 36x36)."""

CNN_MIN_SIZES = {"nature": NATURE_CNN_MIN_SIZE, "small": 4, "compact": 16}
"""Smallest image height and width each of :data:`CNNS` accepts."""


def needs_small_cnn(space: spaces.Space) -> bool:
    """Whether a ``Dict`` space has an image that NatureCNN cannot encode."""
    if not isinstance(space, spaces.Dict):
        return False
    return any(
        isinstance(sub, spaces.Box) and is_image_space(sub) and min(sub.shape[1:]) < NATURE_CNN_MIN_SIZE
        for sub in space.spaces.values()
    )


class MultimodalExtractor(BaseFeaturesExtractor):
    """SB3's ``CombinedExtractor`` with a choice of image CNN (:data:`CNNS`).

    ``cnn="auto"`` (the default) is NatureCNN, or :class:`SmallCNN` for images smaller than 36x36; ``"nature"``,
    ``"small"`` and ``"compact"`` (:class:`CompactCNN`) pick one for every image.
    """

    def __init__(
        self, observation_space: spaces.Dict, cnn_output_dim: int = 256, normalized_image: bool = False,
        cnn: str = "auto",
    ) -> None:
        super().__init__(observation_space, features_dim=1)
        if cnn != "auto" and cnn not in CNNS:
            raise ValueError(f"unknown cnn {cnn!r}; valid: {['auto', *CNNS]}")
        extractors: dict[str, nn.Module] = {}
        total = 0
        for key, subspace in observation_space.spaces.items():
            if isinstance(subspace, spaces.Box) and is_image_space(subspace, normalized_image=normalized_image):
                small = min(subspace.shape[1:]) < NATURE_CNN_MIN_SIZE
                name = cnn if cnn != "auto" else "small" if small else "nature"
                image_cnn, minimum = CNNS[name], CNN_MIN_SIZES[name]
                if min(subspace.shape[1:]) < minimum:
                    hint = "; use cnn 'small'" if name != "small" else ""
                    raise ValueError(f"the {name!r} cnn needs images of at least {minimum}x{minimum} pixels, but "
                                     f"{key!r} is {subspace.shape[1]}x{subspace.shape[2]}{hint}")
                extractors[key] = image_cnn(subspace, features_dim=cnn_output_dim, normalized_image=normalized_image)
                total += cnn_output_dim
            else:
                extractors[key] = nn.Flatten()
                total += get_flattened_obs_dim(subspace)
        self.extractors = nn.ModuleDict(extractors)
        self._features_dim = total

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([extractor(observations[key]) for key, extractor in self.extractors.items()], dim=1)

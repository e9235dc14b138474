"""Feature extractor for raw ``Dict`` observations whose images are too small for SB3's NatureCNN.

SB3's ``MultiInputPolicy`` encodes every image of a ``Dict`` observation with NatureCNN, whose 8x8/stride-4,
4x4/stride-2 and 3x3 convolutions need images of at least 36x36 pixels. :class:`MultimodalExtractor` is the same
combination (a CNN per image, flattening for everything else, features concatenated) but falls back to
:class:`SmallCNN` for smaller images. :func:`gmc_rl.agents.registry.build_algorithm` uses it only when an image is
below that size, so environments with large enough images get SB3's stock ``CombinedExtractor``.
"""

from __future__ import annotations

import torch
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_flattened_obs_dim, is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from torch import nn

NATURE_CNN_MIN_SIZE = 36
"""Smallest image height and width NatureCNN accepts."""


class SmallCNN(BaseFeaturesExtractor):
    """Two 4x4/stride-2 convolutions (32 and 64 channels, ReLU) and a linear layer; works from 4x4 pixels."""

    def __init__(self, observation_space: spaces.Box, features_dim: int = 256, normalized_image: bool = False) -> None:
        super().__init__(observation_space, features_dim)
        channels = observation_space.shape[0]
        self.cnn = nn.Sequential(
            nn.Conv2d(channels, 32, kernel_size=4, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=4, stride=2, padding=1), nn.ReLU(),
            nn.Flatten(),
        )
        with torch.no_grad():
            flat = self.cnn(torch.zeros(1, *observation_space.shape)).shape[1]
        self.linear = nn.Sequential(nn.Linear(flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.linear(self.cnn(observations))


def needs_small_cnn(space: spaces.Space) -> bool:
    """Whether a ``Dict`` space has an image that NatureCNN cannot encode."""
    if not isinstance(space, spaces.Dict):
        return False
    return any(
        isinstance(sub, spaces.Box) and is_image_space(sub) and min(sub.shape[1:]) < NATURE_CNN_MIN_SIZE
        for sub in space.spaces.values()
    )


class MultimodalExtractor(BaseFeaturesExtractor):
    """SB3's ``CombinedExtractor`` with :class:`SmallCNN` for images smaller than 36x36."""

    def __init__(
        self, observation_space: spaces.Dict, cnn_output_dim: int = 256, normalized_image: bool = False
    ) -> None:
        super().__init__(observation_space, features_dim=1)
        extractors: dict[str, nn.Module] = {}
        total = 0
        for key, subspace in observation_space.spaces.items():
            if isinstance(subspace, spaces.Box) and is_image_space(subspace, normalized_image=normalized_image):
                small = min(subspace.shape[1:]) < NATURE_CNN_MIN_SIZE
                cnn = SmallCNN if small else NatureCNN
                extractors[key] = cnn(subspace, features_dim=cnn_output_dim, normalized_image=normalized_image)
                total += cnn_output_dim
            else:
                extractors[key] = nn.Flatten()
                total += get_flattened_obs_dim(subspace)
        self.extractors = nn.ModuleDict(extractors)
        self._features_dim = total

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        return torch.cat([extractor(observations[key]) for key, extractor in self.extractors.items()], dim=1)

"""The example of docs/custom_envs.md runs as written and gives a valid multimodal environment."""

import re
from pathlib import Path

import gymnasium as gym
import numpy as np

DOC = Path(__file__).resolve().parents[1] / "docs" / "custom_envs.md"


def test_custom_env_guide_runs():
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) >= 2
    namespace: dict = {}
    try:
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)
        env = gym.make("my_project/MountainCarSensors-v0")
        obs, _ = env.reset(seed=0)
        env.action_space.seed(0)
        for _ in range(250):  # past one episode, with resets
            assert env.observation_space.contains(obs)
            obs, _, term, trunc, info = env.step(env.action_space.sample())
            assert env.unwrapped.state_space.contains(info["state"])
            if term or trunc:
                obs, _ = env.reset()
        assert np.any(obs["image"][-1] > 0)
    finally:
        gym.registry.pop("my_project/MountainCarSensors-v0", None)

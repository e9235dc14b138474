"""The example of docs/custom_envs.md runs as written and gives a valid multimodal environment.

Its first code block is the module ``my_package/sensors.py``: it is written into a package on ``sys.path`` and
imported by the blocks after it, as a user's project would be.
"""

import sys

import gymnasium as gym
import numpy as np
from helpers import CUSTOM_ENVS_DOC, custom_env_doc_blocks, write_custom_env_package

ENV_ID = "my_project/MountainCarSensors-v0"


def test_custom_env_guide_runs(tmp_path, monkeypatch):
    blocks = custom_env_doc_blocks()
    assert len(blocks) >= 3
    write_custom_env_package(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {}
    try:
        for block in blocks[1:]:
            exec(compile(block, str(CUSTOM_ENVS_DOC), "exec"), namespace)
        assert gym.registry[ENV_ID].entry_point == "my_package.sensors:MountainCarSensorsEnv"  # a string: any process
        env = gym.make(ENV_ID)
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
        gym.registry.pop(ENV_ID, None)
        for name in ("my_package.sensors", "my_package"):
            sys.modules.pop(name, None)

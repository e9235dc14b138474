"""Contract tests for every registered gmc_rl id: env checkers, seeding, spaces over long rollouts, state, render."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from gmc_rl import envs

ENV_IDS = envs.ENV_IDS


def _rollout(env: gym.Env, seed: int, steps: int, action_seed: int = 0) -> list:
    """Observations of ``steps`` random steps (resetting at episode ends), as a flat list of arrays."""
    obs, _ = env.reset(seed=seed)
    env.action_space.seed(action_seed)
    out = [obs]
    for _ in range(steps):
        obs, _, term, trunc, _ = env.step(env.action_space.sample())
        out.append(obs)
        if term or trunc:
            obs, _ = env.reset()
            out.append(obs)
    return out


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_env_checker(env_id):
    with warnings.catch_warnings():
        # any checker warning fails the test, except the advice that Pendulum's [-2, 2] torque box gets
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message=".*symmetric and normalized space")
        gym_check_env(gym.make(env_id).unwrapped)
        gym_check_env(gym.make(env_id, render_mode="rgb_array").unwrapped)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_sb3_env_checker(env_id):
    # SB3 warns about non-uint8 rank-3 vectors ("sound" looks like an image to it), images below 36x36 and
    # non-normalised action boxes (Pendulum's [-2, 2]); those are advice, not errors. Anything invalid raises.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb3_check_env(gym.make(env_id), warn=True)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_observations_different_seed_different(env_id):
    env = gym.make(env_id)
    first, again = _rollout(env, seed=3, steps=60), _rollout(gym.make(env_id), seed=3, steps=60)
    other = _rollout(env, seed=4, steps=60)
    assert _same(first, again)
    assert not _same(first, other)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_values_stay_in_the_declared_spaces_over_long_rollouts(env_id):
    env = gym.make(env_id)
    space, state_space = env.observation_space, env.unwrapped.state_space
    assert isinstance(state_space, gym.spaces.Box) and state_space.dtype == np.float32
    # random actions, then each extreme action held (drives speeds to their limits)
    policies = [lambda: env.action_space.sample()]
    if isinstance(env.action_space, gym.spaces.Discrete):
        policies += [lambda a=a: a for a in range(env.action_space.n)]
    else:
        policies += [lambda: env.action_space.low, lambda: env.action_space.high]
    env.action_space.seed(0)
    for k, policy in enumerate(policies):
        obs, info = env.reset(seed=k)
        for _ in range(1500):
            assert space.contains(obs), {key: (obs[key].min(), obs[key].max()) for key in obs}
            assert state_space.contains(info["state"]), info["state"]
            obs, reward, term, trunc, info = env.step(policy())
            assert np.isfinite(reward)
            if term or trunc:
                obs, info = env.reset()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rgb_array_render(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert min(frame.shape[:2]) >= 200


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_module_prefixed_id_imports_the_package(env_id):
    for module in ("gmc_rl", "gmc_rl.envs"):
        env = gym.make(f"{module}:{env_id}")
        assert env.spec.id == env_id
        env.close()


def test_import_registers_every_id_once():
    import importlib

    assert set(ENV_IDS) <= set(gym.registry)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # re-registering would warn "Overriding environment"
        assert envs.register_envs() == ENV_IDS
        importlib.reload(envs)
    for env_id in ENV_IDS:
        assert env_id.startswith("gmc_rl/") and gym.spec(env_id).max_episode_steps is not None


def _fresh_process(code: str) -> list[str]:
    """Words that ``code`` prints when run by a fresh interpreter from the repository root."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_fresh_process_makes_module_prefixed_id_without_importing_gmc_rl():
    code = (
        "import sys, gymnasium as gym\n"
        "assert not any(m.split('.')[0] in ('gmc_rl', 'envs') for m in sys.modules)\n"
        "env = gym.make('gmc_rl:gmc_rl/PendulumSound-v0')\n"
        "obs, _ = env.reset(seed=0)\n"
        "print(env.spec.id, obs['image'].shape, 'envs' in sys.modules)\n"
    )
    assert _fresh_process(code) == ["gmc_rl/PendulumSound-v0", "(2,", "60,", "60)", "False"]


@pytest.mark.parametrize("imports", ["import gmc_rl; import gymnasium as gym",  # gymnasium imported afterwards
                                     "import gymnasium as gym; import gmc_rl",  # gymnasium imported before
                                     "import gmc_rl.envs; import gymnasium as gym",
                                     "import gmc_rl.config; import gymnasium.spaces; import gymnasium as gym"])
def test_fresh_process_import_gmc_rl_registers_the_ids(imports):
    code = (
        f"import sys; {imports}\n"
        "assert 'gmc_rl.envs.pendulum_sound' not in sys.modules  # the env classes load on make\n"
        "print(sorted(i for i in gym.registry if i.startswith('gmc_rl/')))\n"
        "print(gym.make('gmc_rl/CartPoleSensors-v0').spec.id)\n"
    )
    # the three envs and the latent env id (gmc_rl.wrappers.make_latent_env), all by string entry points
    assert _fresh_process(code) == ["['gmc_rl/AcrobotSensors-v0',", "'gmc_rl/CartPoleSensors-v0',",
                                    "'gmc_rl/GMCLatent-v0',", "'gmc_rl/PendulumSound-v0']",
                                    "gmc_rl/CartPoleSensors-v0"]


def test_import_gmc_rl_registers_plainly_without_torch_or_an_env():
    """Gymnasium is imported and the ids registered the plain way (no import hook is left on sys.meta_path);
    torch, OpenCV and the env classes wait for gymnasium.make."""
    code = (
        "import sys, gmc_rl\n"
        "print(sorted(m for m in ('torch', 'cv2', 'gmc_rl.envs.pendulum_sound') if m in sys.modules))\n"
        "import gymnasium as gym\n"
        "print(type(gym.__loader__).__name__, 'gmc_rl/PendulumSound-v0' in gym.registry,\n"
        "      any(type(f).__module__.startswith('gmc_rl') for f in sys.meta_path))\n"
    )
    assert _fresh_process(code) == ["[]", "SourceFileLoader", "True", "False"]

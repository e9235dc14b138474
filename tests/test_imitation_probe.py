"""The diagnosis scripts that ask whether a latent supports control: imitation (DAgger) and latent geometry."""

import gymnasium as gym
import numpy as np

import gmc_rl  # noqa: F401  (registers the gmc_rl ids)
from gmc_rl.experiments.imitation_probe import ImitationPolicy, dagger, gather, raw_features, state_features
from gmc_rl.experiments.latent_geometry import linear_agreement, stretch


class LeanRule:
    """A hand-written CartPole expert: push towards where the pole is falling (angle plus angular velocity)."""

    def predict(self, states, deterministic=True):
        states = np.asarray(states)
        return (states[:, 2] + 0.5 * states[:, 3] > 0).astype(np.int64), None


def test_fit_reaches_a_separable_rule_and_not_shuffled_labels():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 4)).astype(np.float32)
    y = (x[:, 0] - x[:, 2] > 0).astype(np.int64)
    assert ImitationPolicy(4, gym.spaces.Discrete(2), seed=0).fit(x, y, epochs=30, seed=0) > 0.95
    shuffled = rng.permutation(y)
    assert ImitationPolicy(4, gym.spaces.Discrete(2), seed=0).fit(x[:200], shuffled[:200], epochs=5, seed=0) < 0.75


def test_fit_regresses_a_box_action_and_clips_to_its_bounds():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(2000, 3)).astype(np.float32)
    y = (0.8 * x[:, :1] - 0.5 * x[:, 1:2]).astype(np.float32)
    space = gym.spaces.Box(-0.5, 0.5, (1,), np.float32)
    policy = ImitationPolicy(3, space, seed=0)
    assert policy.fit(x, y, epochs=40, seed=0) > 0.9
    action, _ = policy.predict(np.array([[1.0, -1.0, 0.0]], dtype=np.float32))
    assert action.shape == (1, 1) and np.all(action <= 0.5)


def test_gather_pairs_every_visited_state_with_the_experts_action():
    env = gym.make("gmc_rl/CartPoleSensors-v0")
    inputs, actions, _ = gather(env, state_features, LeanRule(), None, steps=60, seed=0)
    env.close()
    assert inputs.shape == (60, 4) and actions.shape == (60,)
    np.testing.assert_array_equal(actions, LeanRule().predict(inputs)[0])


def test_dagger_from_the_true_state_imitates_the_expert_in_closed_loop():
    env = gym.make("gmc_rl/CartPoleSensors-v0")
    expert = LeanRule()
    _, _, expert_return = gather(env, state_features, expert, None, steps=1500, seed=1000)
    learner, history = dagger(env, state_features, expert, rounds=3, steps=600, epochs=40, seed=0)
    _, _, learner_return = gather(env, state_features, expert, learner, steps=1500, seed=1000)
    env.close()
    assert [row["round"] for row in history] == [0, 1, 2]
    assert history[-1]["train_agreement"] > 0.9
    assert learner_return >= 0.8 * expert_return > 0


def test_raw_features_flatten_and_scale_images():
    obs = {"image": np.full((2, 3, 3), 255, np.uint8), "joints": np.arange(4, dtype=np.float32)}
    features = raw_features(["image", "joints"])(obs, {})
    assert features.shape == (22,) and features[:18].max() == 1.0
    np.testing.assert_array_equal(features[18:], [0, 1, 2, 3])


def test_linear_agreement_and_stretch_known_answers():
    rng = np.random.default_rng(2)
    states = rng.normal(size=(900, 4))
    rule = (states[:, 0] + states[:, 1] > 0).astype(np.int64)
    assert linear_agreement(states, rule, discrete=True, n_actions=2) > 0.9
    assert linear_agreement(rng.normal(size=(900, 4)), rule, discrete=True, n_actions=2) < 0.65
    path = np.cumsum(rng.normal(size=(300, 4)), axis=0)
    continues = np.ones(300, dtype=bool)
    np.testing.assert_allclose(stretch(path, path, continues), 1.0)
    rotated = path @ np.linalg.qr(rng.normal(size=(4, 4)))[0]
    assert 0.3 < np.median(stretch(rotated * 5.0, path, continues)) < 3.0

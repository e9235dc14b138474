"""Physics of the Doppler receivers (gmc_rl.envs.sound): rest, approach, recession, inverse square, analytic bounds."""

import math

import numpy as np
import pytest

from gmc_rl.envs.sound import (
    RECEIVER_NAMES,
    DopplerReceivers,
    annulus_distance_bounds,
    box_distance_bounds,
    receiver_positions,
)

F, C, V_MAX = 440.0, 20.0, 8.0


def _ears(positions=((3.0, 0.0),), bounds=((1.0, 6.0),)) -> DopplerReceivers:
    return DopplerReceivers(np.array(positions), F, C, V_MAX, np.array(bounds))


def test_source_at_rest_hears_emitted_frequency_exactly():
    ears = _ears([(3.0, 0.0), (-2.0, 1.0), (0.0, -4.0)], [(1.0, 6.0)] * 3)
    freq, _ = ears.measure((0.5, 0.2), (0.0, 0.0))
    assert np.all(freq == F)


def test_doppler_shift_up_when_approaching_and_down_when_receding():
    ears = _ears()
    towards, _ = ears.measure((0.0, 0.0), (2.0, 0.0))
    away, _ = ears.measure((0.0, 0.0), (-2.0, 0.0))
    sideways, _ = ears.measure((0.0, 0.0), (0.0, 2.0))
    assert towards[0] == pytest.approx(F * C / (C - 2.0))
    assert away[0] == pytest.approx(F * C / (C + 2.0))
    assert away[0] < F < towards[0]
    assert sideways[0] == pytest.approx(F)  # no radial component, no shift


def test_doppler_uses_only_the_radial_component():
    ears = _ears()
    freq, _ = ears.measure((0.0, 0.0), (3.0, 4.0))  # receiver along +x: radial speed 3
    assert freq[0] == pytest.approx(F * C / (C - 3.0))


def test_amplitude_is_inverse_square_and_falls_with_distance():
    ears = _ears()
    amps = [ears.measure((3.0 - d, 0.0), (0.0, 0.0))[1][0] for d in (1.5, 2.0, 3.0, 4.5)]
    assert amps == pytest.approx([1 / 1.5**2, 1 / 2.0**2, 1 / 3.0**2, 1 / 4.5**2])
    assert all(a > b for a, b in zip(amps, amps[1:]))


def test_scaled_readings_hit_exact_bounds_and_saturate():
    ears = _ears()
    out = np.zeros((1, 2), np.float32)
    ears.hear((2.0, 0.0), (V_MAX, 0.0), out)  # closest possible (d=1), approaching at max speed
    assert out[0] == pytest.approx([1.0, 1.0])
    ears.hear((-3.0, 0.0), (-V_MAX, 0.0), out)  # farthest possible (d=6), receding at max speed
    assert out[0] == pytest.approx([0.0, 0.0], abs=1e-7)
    ears.hear((2.9, 0.0), (5 * V_MAX, 0.0), out)  # beyond the bounds: saturates inside [0, 1]
    assert np.all((out >= 0) & (out <= 1))
    assert out[0] == pytest.approx([1.0, 1.0])


def test_hear_matches_scaled_measure():
    positions = receiver_positions(["LEFT_BOTTOM", "RIGHT_BOTTOM", "MIDDLE_TOP"], 2.2)
    ears = DopplerReceivers(positions, F, C, V_MAX, annulus_distance_bounds(positions, (0, 0), 1.0, 1.0))
    rng = np.random.default_rng(0)
    out = np.zeros((3, 2), np.float32)
    for _ in range(50):
        theta, speed = rng.uniform(-math.pi, math.pi), rng.uniform(-V_MAX, V_MAX)
        pos = (-math.sin(theta), math.cos(theta))
        vel = (-math.cos(theta) * speed, -math.sin(theta) * speed)
        freq, amp = ears.measure(pos, vel)
        ears.hear(pos, vel, out)
        np.testing.assert_allclose(out[:, 0], ears.scale_frequency(freq), atol=1e-6)
        np.testing.assert_allclose(out[:, 1], ears.scale_amplitude(amp), atol=1e-6)
        assert np.all((out >= 0) & (out <= 1))


def test_rest_frequency_scale_is_analytic():
    ears = _ears()
    assert float(ears.scale_frequency(F)) == pytest.approx((C - V_MAX) / (2 * C))  # asymmetric Doppler band


def test_distance_bounds_are_exact_for_circle_and_box():
    pos = np.array([[3.0, 4.0]])  # 5 from the origin
    np.testing.assert_allclose(annulus_distance_bounds(pos, (0, 0), 1.0, 1.0), [[4.0, 6.0]])
    np.testing.assert_allclose(annulus_distance_bounds(pos, (0, 0), 0.0, 2.0), [[3.0, 7.0]])
    np.testing.assert_allclose(box_distance_bounds(np.array([[3.0, 0.0]]), (-1, -1), (1, 1)), [[2.0, math.hypot(4, 1)]])
    with pytest.raises(ValueError, match="receivers"):
        annulus_distance_bounds(np.array([[0.5, 0.0]]), (0, 0), 0.0, 1.0)
    with pytest.raises(ValueError, match="receivers"):
        box_distance_bounds(np.array([[0.0, 0.0]]), (-1, -1), (1, 1))


def test_receiver_names_and_errors():
    pos = receiver_positions(list(RECEIVER_NAMES), 2.0)
    assert pos.shape == (8, 2) and np.all(np.abs(pos).max(axis=1) == 2.0)
    np.testing.assert_allclose(receiver_positions(["LEFT_BOTTOM"], 2.2), [[-2.2, -2.2]])
    for bad in (["NOWHERE"], [], "LEFT_BOTTOM", ["MIDDLE_TOP", "MIDDLE_TOP"]):
        with pytest.raises(ValueError, match="^receivers"):
            receiver_positions(bad, 2.2)


def test_constructor_rejects_sound_slower_than_source():
    with pytest.raises(ValueError, match="sound_speed"):
        DopplerReceivers(np.array([[3.0, 0.0]]), F, 8.0, 8.0, np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="frequency"):
        DopplerReceivers(np.array([[3.0, 0.0]]), 0.0, 20.0, 8.0, np.array([[1.0, 2.0]]))

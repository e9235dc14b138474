"""Arrays given to the encoders, by dtype: images are raw uint8 and nothing else; a vector modality is a float
dtype (or exactly the non-float dtype its env declares), with NaN and inf refused.

Every method shares the check (``gmc_rl.modalities.check_observation_batch``, through
``MultimodalModel.preprocess``), so GMC, the MVAE and MUSE are each tested, with numpy arrays and torch tensors.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces

from gmc_rl.config import ModelConfig
from gmc_rl.errors import ModalityError, SensorValueError
from gmc_rl.modalities import check_observation_batch, modality_specs
from gmc_rl.model import GMCModel
from gmc_rl.muse.model import MUSEModel
from gmc_rl.mvae.model import MVAEModel

SPACE = spaces.Dict({"image": spaces.Box(0, 255, (1, 8, 8), np.uint8), "vec": spaces.Box(-5.0, 5.0, (3,), np.float32)})
SPECS = modality_specs(SPACE)
CONFIG = ModelConfig(latent_dim=4, common_dim=8, head_hidden=8, conv_channels=[4], mlp_hidden=[8])
MODELS = {"gmc": GMCModel, "mvae": MVAEModel, "muse": MUSEModel}


@pytest.fixture(scope="module", params=list(MODELS))
def model(request):
    torch.manual_seed(0)
    return MODELS[request.param](SPECS, CONFIG).eval()


def _batch(image=None, vec=None) -> dict:
    return {"image": np.zeros((2, 1, 8, 8), np.uint8) if image is None else image,
            "vec": np.zeros((2, 3), np.float32) if vec is None else vec}


BAD_IMAGES = {
    "int64 holding 1000": np.full((2, 1, 8, 8), 1000, np.int64),
    "int8 holding -100": np.full((2, 1, 8, 8), -100, np.int8),
    "bool": np.ones((2, 1, 8, 8), bool),
    "uint16": np.zeros((2, 1, 8, 8), np.uint16),
    "int32 in range": np.zeros((2, 1, 8, 8), np.int32),
    "float32": np.zeros((2, 1, 8, 8), np.float32),
    "float64": np.zeros((2, 1, 8, 8), np.float64),
    "object": np.zeros((2, 1, 8, 8), object),
    "torch int64": torch.zeros((2, 1, 8, 8), dtype=torch.int64),
    "torch bool": torch.zeros((2, 1, 8, 8), dtype=torch.bool),
    "torch float32": torch.zeros((2, 1, 8, 8)),
}


@pytest.mark.parametrize("image", BAD_IMAGES.values(), ids=BAD_IMAGES.keys())
def test_an_image_that_is_not_uint8_is_refused_by_every_method(model, image):
    got = str(image.dtype).removeprefix("torch.")
    with pytest.raises(ModalityError, match=f"modality 'image': expected dtype uint8 \\(raw image\\), got {got}$"):
        model.encode(_batch(image=image))


BAD_VECTORS = {
    "int64": np.ones((2, 3), np.int64),
    "int32": np.ones((2, 3), np.int32),
    "uint8": np.ones((2, 3), np.uint8),
    "bool": np.ones((2, 3), bool),
    "complex": np.ones((2, 3), np.complex64),
    "object": np.ones((2, 3), object),
    "strings": np.array([["a", "b", "c"]] * 2),
    "torch int64": torch.ones((2, 3), dtype=torch.int64),
    "torch bool": torch.ones((2, 3), dtype=torch.bool),
}


@pytest.mark.parametrize("vec", BAD_VECTORS.values(), ids=BAD_VECTORS.keys())
def test_a_float_vector_given_integers_booleans_or_objects_is_refused(model, vec):
    got = str(vec.dtype).removeprefix("torch.")
    message = f"modality 'vec': expected a float dtype \\(vector modality\\), got {got}$"
    with pytest.raises(ModalityError, match=message):
        model.encode(_batch(vec=vec))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, torch.float32, torch.float64])
def test_non_finite_vector_values_are_refused_in_every_float_dtype(model, value, dtype):
    if isinstance(dtype, torch.dtype):
        vec = torch.zeros((2, 3), dtype=dtype)
    else:
        vec = np.zeros((2, 3), dtype)
    vec[1, 0] = value
    with pytest.raises(SensorValueError, match="modality 'vec' contains NaN or inf values"):
        model.encode(_batch(vec=vec))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, torch.float32, torch.float64, torch.bfloat16])
def test_finite_float_vectors_and_uint8_images_are_encoded(model, dtype):
    vec = torch.full((2, 3), 0.5, dtype=dtype) if isinstance(dtype, torch.dtype) else np.full((2, 3), 0.5, dtype)
    image = np.full((2, 1, 8, 8), 200, np.uint8)
    for batch in (_batch(image=image, vec=vec), _batch(image=torch.from_numpy(image), vec=vec)):
        latent = model.encode(batch)
        assert latent.shape == (2, CONFIG.latent_dim) and torch.isfinite(latent).all()
    single = model.encode(_batch(image=image, vec=vec), modalities=["vec"])
    assert torch.isfinite(single).all()


def test_a_non_float_vector_takes_exactly_its_declared_dtype():
    space = spaces.Dict({"count": spaces.Box(0, 10, (2,), np.int32), "flag": spaces.Box(0, 1, (1,), np.bool_)})
    specs = modality_specs(space)
    ok = {"count": np.ones((2, 2), np.int32), "flag": np.ones((2, 1), bool)}
    assert check_observation_batch(ok, specs, list(specs)) == 2
    assert check_observation_batch({**ok, "count": np.ones((2, 2), np.float32)}, specs, list(specs)) == 2
    with pytest.raises(ModalityError, match=r"modality 'count': expected a float dtype or int32 \(the declared "
                                            r"dtype\) \(vector modality\), got int64"):
        check_observation_batch({**ok, "count": np.ones((2, 2), np.int64)}, specs, list(specs))
    with pytest.raises(ModalityError, match="modality 'flag': expected a float dtype or bool .* got uint8"):
        check_observation_batch({**ok, "flag": np.ones((2, 1), np.uint8)}, specs, list(specs))


# Finite values far outside what the encoder can represent (before: a zero or NaN latent, silently), and reference
# latents of the wrong kind (before: raw AttributeErrors from deep inside).

@pytest.fixture(scope="module")
def gmc():
    torch.manual_seed(0)
    return GMCModel(SPECS, CONFIG).eval()


@pytest.mark.parametrize("value", [1e30, -1e30, 3e38, -3e38], ids=["1e30", "-1e30", "3e38", "-3e38"])
@pytest.mark.parametrize("modalities", [None, ["vec"]], ids=["complete", "vec alone"])
def test_values_the_encoder_cannot_represent_are_refused_naming_the_modality(gmc, value, modalities):
    with pytest.raises(SensorValueError, match=r"too large to encode.*'vec' largest \|value\| [0-9.e+]+ \(declared "
                                               r"range \[-5, 5\]\)"):
        gmc.encode(_batch(vec=np.full((2, 3), value, np.float32)), modalities)
    # values well outside the declared range but still representable give unit latents, as before
    latent = gmc.encode(_batch(vec=np.full((2, 3), 1e6, np.float32)), modalities)
    assert torch.allclose(latent.norm(dim=-1), torch.ones(2), atol=1e-5)


@pytest.mark.parametrize("latents", [
    2.7, True, "3", [[1.0, 0.0, 0.0, 0.0]], np.ones((3, 4), np.int64), torch.ones((3, 4), dtype=torch.int32),
    np.full((3, 4), np.nan, np.float32), torch.full((3, 4), float("inf")), np.zeros((3, 4), np.float32),
    torch.ones((3, 5)), torch.ones((0, 4)),
], ids=["float", "bool", "str", "list", "numpy int", "torch int", "NaN", "inf", "zero rows", "wrong size", "empty"])
def test_reference_latents_of_the_wrong_kind_are_refused(gmc, latents):
    with pytest.raises(ModalityError, match="reference latents"):
        gmc.set_reference_latents(latents)
    assert gmc.reference_latents is None


@pytest.mark.parametrize("neighbours", [True, 2.0, "2", 0, 4])
def test_reference_neighbours_must_be_an_integer_in_range(gmc, neighbours):
    with pytest.raises(ModalityError, match="reference neighbours"):
        gmc.set_reference_latents(torch.nn.functional.normalize(torch.ones((3, 4))), neighbours=neighbours)


def test_reference_latents_from_numpy_or_torch_give_the_same_projection(gmc):
    rows = torch.nn.functional.normalize(torch.randn(20, 4, generator=torch.Generator().manual_seed(1)), dim=-1)
    batch = _batch(vec=np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3))
    gmc.set_reference_latents(rows.numpy(), neighbours=3)
    from_numpy = gmc.encode(batch, ["vec"])
    gmc.set_reference_latents(rows, neighbours=3)
    assert torch.equal(from_numpy, gmc.encode(batch, ["vec"]))
    gmc.set_reference_latents(None)

"""Vision encoders on tiny models built from configs in the test (nothing is downloaded)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from vision_encoder import Encoder, HFVisionTower, PatchEncoder, VQEncoder, images_to_pixels, vision_config


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: intra-op threading only costs time (about 30x on a busy 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_images(count: int, width: int, height: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)) for _ in range(count)]


def assert_batched_equals_single(encoder, images, atol=1e-5):
    batched = encoder.encode(images)
    single = torch.cat([encoder.encode([image]) for image in images])
    torch.testing.assert_close(batched, single, atol=atol, rtol=0)


# --------------------------------------------------------------------------- PatchEncoder


@pytest.fixture(scope="module", params=["vit", "siglip"])
def patch_encoder(request):
    torch.manual_seed(0)
    config = vision_config(request.param, hidden_size=32, layers=1, heads=4, patch_size=8, image_size=32)
    return PatchEncoder(config, dim=16).eval()


@pytest.mark.parametrize("width,height", [(24, 24), (64, 48)])
def test_patch_encoder_shape_and_batching(patch_encoder, width, height):
    images = random_images(3, width, height)
    tokens = patch_encoder.encode(images)
    assert isinstance(patch_encoder, Encoder)
    assert tokens.shape == (3, (width // 8) * (height // 8), 16)  # (B, T, dim)
    assert torch.isfinite(tokens).all()
    assert_batched_equals_single(patch_encoder, images)


def test_patch_encoder_rejects_bad_sizes(patch_encoder):
    with pytest.raises(ValueError, match="multiples of the patch size"):
        patch_encoder.encode(random_images(1, 30, 32))
    with pytest.raises(ValueError, match="share a size"):
        patch_encoder.encode(random_images(1, 32, 32) + random_images(1, 24, 24))


def test_patch_encoder_unknown_kind():
    with pytest.raises(ValueError, match="unknown vision model kind"):
        vision_config("resnet")
    from transformers import CLIPVisionConfig

    with pytest.raises(ValueError, match="ViT or SigLIP"):
        PatchEncoder(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=4, image_size=32, patch_size=8), dim=16)


def test_patch_encoder_gradients_reach_projector_and_vision(patch_encoder):
    patch_encoder.zero_grad(set_to_none=True)
    tokens = patch_encoder(images_to_pixels(random_images(2, 32, 32)))  # forward keeps the graph
    tokens.pow(2).mean().backward()
    for name, module in (("projector", patch_encoder.projector), ("vision", patch_encoder.vision)):
        grads = [p.grad for p in module.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name
    patch_encoder.zero_grad(set_to_none=True)


# --------------------------------------------------------------------------- HFVisionTower

TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
             patch_size=8)


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    """kind -> (directory, in-memory model that was saved there)."""
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, SiglipImageProcessor,
                              SiglipVisionConfig, SiglipVisionModel)

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("towers")
    clip = CLIPVisionModel(CLIPVisionConfig(**TOWER)).eval()
    clip.save_pretrained(root / "clip")
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(root / "clip")
    siglip = SiglipVisionModel(SiglipVisionConfig(**TOWER)).eval()
    siglip.save_pretrained(root / "siglip")
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(root / "siglip")
    return {"clip": (root / "clip", clip), "siglip": (root / "siglip", siglip)}


@pytest.mark.parametrize("kind", ["clip", "siglip"])
def test_hf_tower_shapes_projector_and_batching(towers, kind):
    path, _ = towers[kind]
    tower = HFVisionTower(path)
    assert isinstance(tower, Encoder)
    images = random_images(3, 32, 32)
    tokens = tower.encode(images)
    assert tower.dim == 32 and tokens.shape == (3, (32 // 8) ** 2, 32)  # CLIP's class token is dropped
    assert_batched_equals_single(tower, images)
    # the processor resizes: other (and mixed) sizes give the same T
    assert tower.encode(random_images(1, 50, 40) + random_images(1, 24, 24)).shape == (2, 16, 32)

    projected = HFVisionTower(path, dim=24, layer=-2)
    tokens = projected.encode(images)
    assert projected.dim == 24 and tokens.shape == (3, 16, 24)
    assert_batched_equals_single(projected, images)


@pytest.mark.parametrize("kind", ["clip", "siglip"])
@pytest.mark.parametrize("layer", [-1, 1])
def test_hf_tower_matches_direct_model_call(towers, kind, layer):
    path, model = towers[kind]
    tower = HFVisionTower(path, layer=layer)
    images = random_images(2, 40, 32, seed=1)
    pixels = tower.processor(images=images, return_tensors="pt")["pixel_values"]  # (B, 3, 32, 32)
    assert pixels.shape == (2, 3, 32, 32)
    with torch.no_grad():
        expected = model(pixel_values=pixels, output_hidden_states=True).hidden_states[layer]
    if kind == "clip":
        expected = expected[:, 1:]
    torch.testing.assert_close(tower.encode(images), expected, atol=1e-6, rtol=0)


def test_hf_tower_projector_trains_tower_frozen(towers):
    tower = HFVisionTower(towers["siglip"][0], dim=8).train()
    assert not tower.vision.training
    tower(tower.preprocess(random_images(2, 32, 32))).sum().backward()
    assert tower.projector.weight.grad is not None and tower.projector.weight.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in tower.vision.parameters())


def test_hf_tower_errors(tmp_path, towers):
    missing = tmp_path / "no-such-tower"
    with pytest.raises(FileNotFoundError, match="no-such-tower"):
        HFVisionTower(missing)
    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                       image_size=32, patch_size=8)).save_pretrained(tmp_path / "vit")
    with pytest.raises(ValueError, match=r"'vit'.*supported: clip"):
        HFVisionTower(tmp_path / "vit")
    with pytest.raises(ValueError, match="layer 3 out of range"):
        HFVisionTower(towers["clip"][0], layer=3)


# --------------------------------------------------------------------------- VQEncoder


@pytest.fixture(scope="module")
def vq_model():
    from diffusers import VQModel

    torch.manual_seed(0)
    return VQModel(block_out_channels=(16, 32), down_block_types=("DownEncoderBlock2D",) * 2,
                   up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, latent_channels=4,
                   num_vq_embeddings=32, vq_embed_dim=4, norm_num_groups=8, sample_size=32).eval()


def test_vq_ids_and_vectors(vq_model):
    encoder = VQEncoder(vq_model)
    assert isinstance(encoder, Encoder)
    assert (encoder.dim, encoder.num_codes, encoder.factor) == (4, 32, 2)
    images = random_images(3, 32, 24)  # 32 wide, 24 high -> a 12 x 16 latent grid
    ids = encoder.encode_ids(images)
    assert ids.dtype == torch.long and ids.shape == (3, 12 * 16)
    assert 0 <= int(ids.min()) and int(ids.max()) < 32
    vectors = encoder.encode(images)
    assert vectors.shape == (3, 12 * 16, 4)
    torch.testing.assert_close(vectors, vq_model.quantize.embedding.weight[ids], atol=0, rtol=0)
    # row-major order over the latent grid, as the quantizer sees it
    with torch.no_grad():
        latents = vq_model.encode(images_to_pixels(images)).latents  # (B, D, h, w)
    assert latents.shape[-2:] == (12, 16)
    distances = torch.cdist(latents.permute(0, 2, 3, 1).reshape(3, -1, 4), vq_model.quantize.embedding.weight[None])
    assert torch.equal(distances.argmin(-1), ids)
    assert torch.equal(torch.cat([encoder.encode_ids([image]) for image in images]), ids)
    assert_batched_equals_single(encoder, images)


def test_vq_load_by_path_and_decode(vq_model, tmp_path):
    vq_model.save_pretrained(tmp_path / "vq")
    images = random_images(2, 32, 24, seed=2)
    ids = VQEncoder(vq_model).encode_ids(images)
    loaded = VQEncoder(tmp_path / "vq")
    assert torch.equal(loaded.encode_ids(images), ids)
    decoded = loaded.decode_ids(ids, loaded.grid(32, 24))
    assert len(decoded) == 2 and all(image.size == (32, 24) and image.mode == "RGB" for image in decoded)
    with pytest.raises(ValueError, match="do not fit"):
        loaded.decode_ids(ids, (12, 12))
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        loaded.decode_ids(torch.full((1, 4), 32), (2, 2))


def test_vq_errors(vq_model, tmp_path):
    encoder = VQEncoder(vq_model)
    with pytest.raises(ValueError, match="multiples of 2"):
        encoder.encode_ids(random_images(1, 31, 24))
    with pytest.raises(ValueError, match="share a size"):
        encoder.encode(random_images(1, 32, 24) + random_images(1, 24, 24))
    with pytest.raises(FileNotFoundError, match="no-such-vq"):
        VQEncoder(tmp_path / "no-such-vq")
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel"}))
    with pytest.raises(ValueError, match="not a diffusers VQModel"):
        VQEncoder(tmp_path / "unet")


@pytest.mark.parametrize("kind", ["vit", "siglip"])
def test_patch_encoder_with_a_conv_stem(kind):
    from vision_encoder.patch import ConvStem

    encoder = PatchEncoder(vision_config(kind, hidden_size=16, heads=2, patch_size=16, image_size=32), dim=8,
                           pad=True, stem=8)
    images = [Image.new("RGB", (40, 24), (255, 0, 0)), Image.new("RGB", (40, 24), (0, 0, 255))]
    tokens = encoder.encode(images)
    assert tokens.shape == (2, 3 * 2, 8)  # 40x24 padded to 48x32: 3 x 2 patches of 16 px
    torch.testing.assert_close(tokens[1:], encoder.encode(images[1:]), atol=1e-5, rtol=0)
    assert any(isinstance(m, ConvStem) for m in encoder.modules())
    with pytest.raises(ValueError, match="must divide"):
        PatchEncoder(vision_config(kind, patch_size=16), dim=8, stem=6)

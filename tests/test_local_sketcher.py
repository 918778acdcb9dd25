"""`LocalDiffusersSketcher` on a tiny random InstructPix2Pix pipeline built and saved locally (no hub)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import tasks

diffusers = pytest.importorskip("diffusers")
transformers = pytest.importorskip("transformers")

from imagegen.local import LocalDiffusersSketcher  # noqa: E402

THOUGHTS = ["Go up.", "Go left."]


@pytest.fixture(scope="module", autouse=True)
def single_thread():
    """The models are tiny: intra-op threads only add overhead (and are very slow on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny_tokenizer(directory):
    """A CLIP BPE tokenizer whose vocabulary covers the test thoughts ("go", "up", "left", ".")."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in sorted(set("goupleft.")):
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    merges = ["g o</w>", "u p</w>", "l e", "le f", "lef t</w>"]
    for merge in merges:
        vocab.setdefault(merge.replace(" ", ""), len(vocab))
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return transformers.CLIPTokenizer.from_pretrained(directory, model_max_length=8)


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    torch.manual_seed(0)
    tokenizer = _tiny_tokenizer(tmp_path_factory.mktemp("tokenizer"))
    assert tokenizer.convert_ids_to_tokens(tokenizer("Go left.").input_ids) == [
        "<|startoftext|>", "go</w>", "left</w>", ".</w>", "<|endoftext|>"]
    text_encoder = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=8, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",), up_block_types=("UpDecoderBlock2D",),
        block_out_channels=(8,), layers_per_block=1, latent_channels=4, norm_num_groups=4, sample_size=32)
    unet = diffusers.UNet2DConditionModel(  # 4 noisy latents + 4 image latents in, InstructPix2Pix-style
        sample_size=32, in_channels=8, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=8)
    pipe = diffusers.StableDiffusionInstructPix2PixPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=diffusers.DDIMScheduler(),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    path = tmp_path_factory.mktemp("ip2p")
    pipe.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def sketcher(pipeline_dir):
    return LocalDiffusersSketcher(pipeline_dir, device="cpu", default_steps=1)


@pytest.fixture(scope="module")
def mazes():
    task = tasks.get("maze-nav-v0")
    images = [task.generate(np.random.default_rng(0), size).image for size in (4, 5)]
    assert [image.size for image in images] == [(32, 32), (40, 40)]
    return images


def test_sketch_returns_rgb_images_of_input_sizes(sketcher, mazes):
    assert sketcher.produces_images and sketcher.label.startswith("local:")
    out = sketcher.sketch(mazes, THOUGHTS, steps=1, generator=torch.Generator().manual_seed(0))
    assert len(out) == 2
    for image, prev in zip(out, mazes):
        assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == prev.size


def test_mixed_sizes_are_denoised_per_size(sketcher, mazes, monkeypatch):
    """diffusers resizes a whole batch to its first image's size, so each size must be its own call."""
    seen = []
    pipe = sketcher.pipe

    def recording_pipe(*, prompt, image, **kwargs):
        seen.append(([i.size for i in image], list(prompt)))
        result = pipe(prompt=prompt, image=image, **kwargs)
        assert all(out.size == i.size for out, i in zip(result.images, image))  # no resizing inside the pipeline
        return result

    monkeypatch.setattr(sketcher, "pipe", recording_pipe)
    out = sketcher.sketch([mazes[0], mazes[1], mazes[0]], ["Go up.", "Go left.", "Go left."], steps=1)
    assert sorted(seen) == [([(32, 32), (32, 32)], ["Go up.", "Go left."]), ([(40, 40)], ["Go left."])]
    assert [image.size for image in out] == [(32, 32), (40, 40), (32, 32)]


def test_same_seed_gives_same_sketch(sketcher, mazes):
    first = sketcher.sketch(mazes, THOUGHTS, steps=1, generator=torch.Generator().manual_seed(123))
    second = sketcher.sketch(mazes, THOUGHTS, steps=1, generator=torch.Generator().manual_seed(123))
    for a, b in zip(first, second):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_directory_without_model_index_is_rejected(tmp_path):
    with pytest.raises(ValueError, match=str(tmp_path)):
        LocalDiffusersSketcher(tmp_path, device="cpu")


def test_mismatched_lengths_are_rejected(sketcher, mazes):
    with pytest.raises(ValueError, match="2 previous images but 1 thoughts"):
        sketcher.sketch(mazes, ["Go up."], steps=1)
    with pytest.raises(ValueError, match="generators"):
        sketcher.sketch(mazes, THOUGHTS, steps=1, generator=[torch.Generator().manual_seed(0)])

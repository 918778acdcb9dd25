"""`PolicyModel`: a Llama- or Qwen2-style decoder from a transformers config plus a `PatchEncoder`.

Text tokens and vision tokens share one sequence of input embeddings. A token id of ``IMAGE_SLOT``
(-1) marks a position that takes the next vision token; vision tokens fill those slots in row-major
order (batch, then position), so a sequence's images must be passed in the order they appear.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from vision_encoder.patch import PatchEncoder, vision_config
from vot.lm.tokenizer import MAX_INDEX, WordTokenizer

IMAGE_SLOT = -1
DECODERS = ("llama", "qwen2")
MODES = ("vot", "cot", "direct")


@dataclass
class PolicyShape:
    """The architecture of a policy: decoder and vision tower sizes."""

    decoder: str = "llama"
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    kv_heads: int = 4
    max_positions: int = 4096
    vision: str = "vit"
    vision_hidden: int = 64
    vision_layers: int = 1
    vision_heads: int = 4
    patch: int = 16  # pixels; 2x2 task cells per vision token (images padded to a multiple)
    stem: int | None = 8  # a convolutional stem reading 8-px cells (None: the plain patch convolution)
    perception_weight: float = 1.0  # auxiliary loss: each vision feature names its cells' colours
    perception_edges: bool = False  # ... and the colours of each cell's four border lines (maze walls)
    perception_context: bool = False  # each token also sees its neighbouring patches and names their colours

    def decoder_config(self, vocab_size: int, tokenizer: WordTokenizer):
        common = dict(vocab_size=vocab_size, hidden_size=self.hidden, intermediate_size=self.hidden * 2,
                      num_hidden_layers=self.layers, num_attention_heads=self.heads,
                      num_key_value_heads=self.kv_heads, max_position_embeddings=self.max_positions,
                      pad_token_id=tokenizer.pad, bos_token_id=tokenizer.bos, eos_token_id=tokenizer.eos,
                      tie_word_embeddings=True)
        if self.decoder == "llama":
            from transformers import LlamaConfig

            return LlamaConfig(**common)
        if self.decoder == "qwen2":
            from transformers import Qwen2Config

            return Qwen2Config(**common)
        raise ValueError(f"unknown decoder {self.decoder!r}; available: {', '.join(DECODERS)}")


@dataclass
class PolicySpec:
    """What a saved policy is: its task, its reasoning mode and its shape (``policy.json``)."""

    task: str
    mode: str
    shape: PolicyShape = field(default_factory=PolicyShape)
    format: str = "vot.policy/1"

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; available: {', '.join(MODES)}")
        if isinstance(self.shape, dict):
            self.shape = PolicyShape(**self.shape)


def _lattice_ids(means: torch.Tensor) -> torch.Tensor:
    """(N, 3, h, w) colours in [0, 1] -> (N, h, w) ids of the nearest {0, .5, 1}^3 lattice point, in [0, 27)."""
    levels = (means * 2).round().clamp(0, 2).long()
    return levels[:, 0] * 9 + levels[:, 1] * 3 + levels[:, 2]


class PolicyModel(nn.Module):
    """Decoder + vision encoder. ``forward`` is teacher-forced: returns the mean text-token loss."""

    def __init__(self, spec: PolicySpec, tokenizer: WordTokenizer):
        super().__init__()
        from transformers import AutoModelForCausalLM

        self.spec, self.tokenizer = spec, tokenizer
        shape = spec.shape
        self.decoder = AutoModelForCausalLM.from_config(shape.decoder_config(len(tokenizer), tokenizer))
        config = vision_config(shape.vision, hidden_size=shape.vision_hidden, layers=shape.vision_layers,
                               heads=shape.vision_heads, patch_size=shape.patch, image_size=4 * shape.patch)
        self.encoder = PatchEncoder(config, dim=shape.hidden, pad=True, stem=shape.stem, context=shape.perception_context)
        # Segment embeddings: the k-th stated action and the k-th thought share embedding k (0 elsewhere),
        # so "which stated action comes next" is one attention hop (see vot.lm.sequences).
        self.segments = nn.Embedding(MAX_INDEX + 1, shape.hidden)
        nn.init.normal_(self.segments.weight, std=0.02)
        # Perception head (training only): from each patch feature, the colour of each of its cells
        # on the {0, .5, 1}^3 lattice the task renders use. Without it the decoder's gradient alone did
        # not teach the encoder to see (answer accuracy at chance after 2000 CPU steps); with it a
        # probe sequence learned to read the answer off one image in 150 steps.
        self.cell = shape.stem or shape.patch
        self.perception = nn.Linear(shape.vision_hidden, (shape.patch // self.cell) ** 2 * 27)
        # Edge perception: the same for the 1-px border lines of each cell (top, bottom, left, right).
        # A maze wall darkens 1/8 of a cell's pixels, which the cell's mean colour rounds away, so
        # without this head nothing teaches the encoder to see walls (maze-nav stayed at a third's
        # log-prob per move, BENCHMARKS.md "Planning from verifiable reward").
        if shape.perception_edges:
            self.edge_perception = nn.Linear(shape.vision_hidden, (shape.patch // self.cell) ** 2 * 4 * 27)
        # Neighbour perception: the colours of the cells of the four patches above, below, left and
        # right, which the stem's neighbourhood convolution brings into each token. A room move
        # compares the agent's cell with its neighbours; the decoder alone gathered them from tokens
        # one row apart and lost 28 points from 7- to 8-cell rooms (BENCHMARKS.md, session 16).
        if shape.perception_context:
            self.context_perception = nn.Linear(shape.vision_hidden, (shape.patch // self.cell) ** 2 * 4 * 27)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def embed(self, ids: torch.Tensor, vision: torch.Tensor | None, segments: torch.Tensor) -> torch.Tensor:
        """ids, segments (B, L), IMAGE_SLOT where vision tokens go; vision (N, T, D) or None -> (B, L, D)."""
        slots = ids == IMAGE_SLOT
        embeds = self.decoder.get_input_embeddings()(ids.clamp(min=0)) + self.segments(segments)  # (B, L, D)
        if vision is None or not slots.any():
            if slots.any():
                raise ValueError("the sequence has image slots but no vision tokens were given")
            return embeds
        if vision.shape[0] * vision.shape[1] != int(slots.sum()):
            raise ValueError(f"{int(slots.sum())} image slots but {vision.shape[0] * vision.shape[1]} vision tokens")
        return embeds.masked_scatter(slots.unsqueeze(-1), vision.to(embeds.dtype))

    def forward(self, ids: torch.Tensor, segments: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
                pixels: torch.Tensor | None, weights: torch.Tensor | None = None,
                exact: torch.Tensor | None = None, positions: torch.Tensor | None = None) -> torch.Tensor:
        """ids, segments, mask, labels (B, L); pixels (N, 3, H, W) of the batch's images in order;
        ``positions`` (B, L) position ids (default: contiguous; `vot.lm.train.gap_positions`).
        Loss only where labels != -100 (the text the policy writes): the mean token loss, or the
        ``weights``-weighted mean (B, L) if given; plus the perception loss over the images that
        ``exact`` (N,) marks as exact renders (all when not given)."""
        perception = torch.zeros((), device=ids.device)
        vision = None
        if pixels is not None and len(pixels):
            features = self.encoder.features(pixels)  # (N, T, width)
            vision = self.encoder.projector(features)  # (N, T, D)
            seen = features if exact is None else features[exact]  # (N', T, width): targets only from exact renders
            shown = pixels if exact is None else pixels[exact]  # (N', 3, H, W)
            if self.spec.shape.perception_weight and len(seen):
                scores = self.perception(seen).reshape(-1, 27)  # (N' * T * cells, 27)
                perception = nn.functional.cross_entropy(scores.float(), self.cell_colours(shown).reshape(-1))
                if self.spec.shape.perception_edges:
                    edges = self.edge_perception(seen).reshape(-1, 27)  # (N' * T * cells * 4, 27)
                    perception = perception + nn.functional.cross_entropy(
                        edges.float(), self.cell_edge_colours(shown).reshape(-1))
                if self.spec.shape.perception_context:
                    around = self.context_perception(seen).reshape(-1, 27)  # (N' * T * 4 * cells, 27)
                    perception = perception + nn.functional.cross_entropy(
                        around.float(), self.neighbour_colours(shown).reshape(-1), ignore_index=-100)
        embeds = self.embed(ids, vision, segments)
        logits = self.decoder(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).logits  # (B, L, V)
        losses = nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(),
                                             ignore_index=-100, reduction="none")  # (B * (L - 1),)
        if weights is None:
            weights = torch.ones_like(losses)
        else:
            weights = weights[:, 1:].flatten().float()
        weights = weights * (labels[:, 1:].flatten() != -100)
        text = (losses * weights).sum() / weights.sum().clamp(min=1e-8)
        return text + self.spec.shape.perception_weight * perception

    def cell_colours(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, T, cells per patch) lattice colour ids in [0, 27), the
        patches row-major and the cells row-major within each patch (the encoder's padding included)."""
        means = nn.functional.avg_pool2d((self._padded(pixels) + 1) / 2, self.cell)  # (N, 3, h, w)
        return self._by_patch(_lattice_ids(means))

    def cell_edge_colours(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, T, cells per patch * 4) lattice colour ids of each cell's
        top, bottom, left and right 1-px border line, without its two corner pixels (maze posts)."""
        unit = (self._padded(pixels) + 1) / 2
        n, _, height, width = unit.shape
        c = self.cell
        cells = unit.reshape(n, 3, height // c, c, width // c, c)  # (N, 3, h, c, w, c)
        lines = torch.stack([cells[:, :, :, 0, :, 1:-1].mean(-1), cells[:, :, :, -1, :, 1:-1].mean(-1),
                             cells[:, :, :, 1:-1, :, 0].mean(-2), cells[:, :, :, 1:-1, :, -1].mean(-2)], dim=-1)
        ids = _lattice_ids(lines.movedim(-1, 1).reshape(n * 4, 3, height // c, width // c))  # (N * 4, h, w)
        ids = ids.reshape(n, 4, height // c, width // c).movedim(1, -1)  # (N, h, w, 4)
        by_patch = self._by_patch(ids)  # (N, T, cells, 4)
        return by_patch.reshape(n, by_patch.shape[1], -1)

    def neighbour_colours(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, T, 4 * cells per patch): the `cell_colours` of the patches
        above, below, left of and right of each patch (in that order), -100 beyond the image."""
        ids = self.cell_colours(pixels)  # (N, T, k*k)
        n, _, cells = ids.shape
        padded_height, padded_width = self._padded(pixels).shape[-2:]
        rows, cols = padded_height // self.spec.shape.patch, padded_width // self.spec.shape.patch
        grid = nn.functional.pad(ids.reshape(n, rows, cols, cells).movedim(-1, 1), (1, 1, 1, 1), value=-100)  # (N, k*k, rows+2, cols+2)
        around = torch.stack([grid[:, :, :-2, 1:-1], grid[:, :, 2:, 1:-1], grid[:, :, 1:-1, :-2], grid[:, :, 1:-1, 2:]],
                             dim=1)  # (N, 4, k*k, rows, cols)
        return around.permute(0, 3, 4, 1, 2).reshape(n, rows * cols, 4 * cells)

    def _padded(self, pixels: torch.Tensor) -> torch.Tensor:
        patch = self.spec.shape.patch
        return nn.functional.pad(pixels, (0, -pixels.shape[-1] % patch, 0, -pixels.shape[-2] % patch))

    def _by_patch(self, ids: torch.Tensor) -> torch.Tensor:
        """(N, h, w, ...) per-cell values -> (N, T, cells per patch, ...), patches and cells row-major."""
        n, h, w = ids.shape[:3]
        k = self.spec.shape.patch // self.cell
        rest = ids.shape[3:]
        grouped = ids.reshape(n, h // k, k, w // k, k, *rest).transpose(2, 3)
        return grouped.reshape(n, (h // k) * (w // k), k * k, *rest)

    # --- saving ---------------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, *, fp16: bool = False) -> None:
        """``policy.json`` + ``tokenizer.json`` + ``model.safetensors`` (fp16 if asked)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        record = asdict(self.spec)
        (directory / "policy.json").write_text(json.dumps(record, indent=2) + "\n")
        self.tokenizer.save(directory / "tokenizer.json")
        state = {k: (v.half() if fp16 and v.is_floating_point() else v).contiguous().cpu()
                 for k, v in self.state_dict().items()}
        state.pop("decoder.lm_head.weight", None)  # tied to the input embeddings
        save_file(state, str(directory / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: str = "cpu") -> "PolicyModel":
        """Load a saved policy (weights upcast to fp32; call ``.to(torch.bfloat16)`` on GPU)."""
        from safetensors.torch import load_file

        directory = Path(directory)
        if not (directory / "policy.json").is_file():
            raise FileNotFoundError(f"{directory} is not a saved policy (no policy.json)")
        spec = PolicySpec(**json.loads((directory / "policy.json").read_text()))
        model = cls(spec, WordTokenizer.load(directory / "tokenizer.json"))
        state = {k: v.float() for k, v in load_file(str(directory / "model.safetensors")).items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if k != "decoder.lm_head.weight"]
        if missing or unexpected:
            raise ValueError(f"{directory}: weights do not match policy.json (missing {missing[:3]}, unexpected {unexpected[:3]})")
        return model.to(device).eval()

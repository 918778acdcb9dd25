"""Teacher-forced probe of a trained policy: does it copy its thoughts, and does it read the answer?

    python benchmarks/policy_probe.py POLICY_DIR [--count 30] [--split val]

On gold chains (gold sketches) of ``--count`` problems per in-distribution size it prints, per size,
how many image cells the perception head names the colour of correctly, the accuracy of the written thought tokens and of the answer's tokens, the thought words it gets
wrong most often, and the confusion of gold answer letter -> predicted letter over all sizes. A
policy that answers from text cues alone shows a confusion at chance on the options the chain's
text does not give away.
"""
from __future__ import annotations

import argparse
import collections

import numpy as np
import torch

import tasks
from tasks.splits import generate_split
from vot.lm.model import PolicyModel
from vot.lm.sequences import build_example
from vot.lm.train import _bucket


def probe(model: PolicyModel, problems) -> dict:
    """Teacher-forced token accuracies and the answer-letter confusion on ``problems`` (one size)."""
    tokenizer = model.tokenizer
    bucket = _bucket([build_example(p, model.spec.mode, tokenizer, model.spec.shape.patch) for p in problems], tokenizer)
    ids, segments = torch.from_numpy(bucket.ids), torch.from_numpy(bucket.segments)
    mask = (torch.arange(ids.shape[1])[None] < torch.from_numpy(bucket.lengths)[:, None]).long()
    vision, perception = None, float("nan")
    if any(len(images) for images in bucket.images):
        pixels = torch.from_numpy(np.concatenate(bucket.images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        with torch.no_grad():
            features = model.encoder.features(pixels)  # (N, T, width)
            vision = model.encoder.projector(features)  # (N, T, D)
            cells = model.perception(features).reshape(features.shape[0], features.shape[1], -1, 27).argmax(-1)
        perception = float((cells == model.cell_colours(pixels)).float().mean())  # per cell, padding included
    with torch.no_grad():
        logits = model.decoder(inputs_embeds=model.embed(ids, vision, segments), attention_mask=mask).logits
    predicted = logits[:, :-1].argmax(-1)  # (B, L - 1)
    labels, answer = torch.from_numpy(bucket.labels[:, 1:]), torch.from_numpy(bucket.answer[:, 1:])
    written = labels != -100
    thought, said = written & ~answer, written & answer
    letters = {tokenizer.encode(letter)[0]: letter for letter in "ABCD"}
    confusion = collections.Counter()
    for row, problem in enumerate(problems):
        position = next(j for j in range(labels.shape[1]) if said[row, j] and int(labels[row, j]) in letters)
        guess = max(letters, key=lambda k: logits[row, position, k].item())
        confusion[(problem.answer, letters[guess])] += 1
    return {"perception": perception, "thought": float(((predicted == labels) & thought).sum() / thought.sum().clamp(min=1)),
            "answer": float(((predicted == labels) & said).sum() / said.sum()),
            "misses": collections.Counter(tokenizer.decode([int(t)]) for t in labels[(predicted != labels) & thought]),
            "confusion": confusion}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("policy", help="a policy directory (or a bundle's policy/)")
    parser.add_argument("--count", type=int, default=30, help="problems per in-distribution size")
    parser.add_argument("--split", default="val")
    args = parser.parse_args()
    model = PolicyModel.from_pretrained(args.policy)
    task = tasks.get(model.spec.task)
    confusion = collections.Counter()
    for size in task.in_distribution:
        result = probe(model, generate_split(task, args.split, size, args.count))
        confusion += result["confusion"]
        print(f"size {size}: perception head cells {100 * result['perception']:.1f}%, thought tokens {100 * result['thought']:.1f}%, answer tokens {100 * result['answer']:.1f}%, "
              f"most missed thought words {result['misses'].most_common(4)}")
    print("answer letter, gold -> predicted:", dict(sorted(confusion.items())))
    print(f"answer letter accuracy: {100 * sum(v for (g, p), v in confusion.items() if g == p) / sum(confusion.values()):.1f}%")


if __name__ == "__main__":
    main()

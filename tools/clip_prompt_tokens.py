"""Write sszoo/data/clip_prompts.json: the CLIP token ids of SAN's class-name prompts, made once with
MMSegmentation 1.2.2's own tokenizer.

MMSegmentation's ``CLIPTextEncoder`` embeds each class name of the dataset in every prompt template of its
template set ("vild": 14 templates such as "a photo of a {}."), tokenised by its byte-pair encoder with the
vocabulary file bpe_simple_vocab_16e6.txt.gz shipped in the mmseg wheel. The token ids depend only on the
class names and the templates, never on the weights, so sszoo keeps the ids themselves (no tokenizer, no
vocabulary file at run time) and runs the text transformer on them with the checkpoint's weights.

Run with the oracle's python (MMSegmentation installed):
    /work/oracle/bin/python tools/clip_prompt_tokens.py [DATASET ...]   (default: coco-stuff164k)
"""
from __future__ import annotations

import json
import os
import sys

from mmseg.utils import get_classes, get_predefined_templates, tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "sszoo", "data", "clip_prompts.json")
TEMPLATES = "vild"
CONTEXT_LENGTH = 77


def vocabulary(dataset: str) -> dict:
    """The dataset's class names as CLIPTextEncoder takes them (a leading "background" dropped) and, per class,
    the token ids of each template's prompt (start and end tokens included, the zero padding left out)."""
    names = list(get_classes(dataset))
    if names[0] == "background":
        names = names[1:]
    templates = get_predefined_templates(TEMPLATES)
    tokens = []
    for name in names:
        ids = tokenizer.tokenize([t.format(name) for t in templates], context_length=CONTEXT_LENGTH)
        tokens.append([[int(i) for i in row[row.nonzero().flatten()]] for row in ids])
    return dict(templates=TEMPLATES, classes=names, tokens=tokens)


def main() -> None:
    datasets = sys.argv[1:] or ["coco-stuff164k"]
    data = dict(context_length=CONTEXT_LENGTH, templates={TEMPLATES: get_predefined_templates(TEMPLATES)},
                vocabularies={d: vocabulary(d) for d in datasets})
    with open(OUT, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    print(OUT, os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()

"""Writes tests/data/clevr/: tiny data sets in the on-disk formats of CLEVR v1.0 and
CLEVR-XAI v1.0, and what the reference pipeline makes of them.

- CLEVR_v1.0/: images/val/CLEVR_val_00000{0,1}.png (480x320 RGBA, as CLEVR's renders are),
  questions/CLEVR_val_questions.json (answers as strings, programs with "function") and
  questions/CLEVR_test_questions.json (no answers or programs).
- CLEVR-XAI_v1.0/: CLEVR-XAI_simple_questions.json (answers as JSON booleans and integers,
  programs with "type"), ground_truth_simple_questions_single_object/{question_index}.npy
  (bool, 128x128; one question has none) and its stats file;
  CLEVR-XAI_v1.0_images_masks/images/CLEVR_unique_000000.png.
- expected.json: per question file, the tokens of each question as the reference tokenizer
  (RelationNetworks-CLEVR utils.py: punctuation split off, whitespace collapsed, lower case)
  gives them, and per image the file of Pillow's bilinear 128x128 resize of the RGB image
  (`Image.open(p).convert("RGB").resize((128, 128), Image.BILINEAR)`), stored as u8 .npy
  (128 x 128 x 3) under resized/. A 37x23 RGB image and its upscale are there too.

Run with scripts/make_clevr_fixtures.sh (the pinned environment of scripts/pyref.sh).
Deterministic: the same bytes on every run.
"""

import json
import os
import re

import numpy as np
import PIL
from PIL import Image

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "data", "clevr")
assert PIL.__version__ == "13.0.0", PIL.__version__


def render(seed, width=480, height=320, alpha=True):
    """A smooth scene-like image (gradients and a few discs) that compresses well."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    img = np.stack(
        [
            96 + 60 * np.sin(x / 37.0 + seed) + 20 * np.cos(y / 23.0),
            110 + 50 * np.cos(x / 51.0) * np.sin(y / 29.0 + seed),
            120 + 40 * np.sin((x + y) / 43.0),
        ],
        axis=-1,
    )
    for _ in range(5):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(10, 45)
        colour = rng.integers(0, 256, 3)
        inside = (x - cx) ** 2 + (y - cy) ** 2 <= r * r
        img[inside] = colour
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    if alpha:
        a = np.full((height, width, 1), 255, np.uint8)
        return Image.fromarray(np.concatenate([img, a], axis=-1), "RGBA")
    return Image.fromarray(img, "RGB")


def tokens(sentence):
    s = re.sub(r"([.,;:!?()])", r" \1 ", sentence)
    s = re.sub(r"\s{2,}", " ", s)
    return [w.lower() for w in s.split()]


def resized(path):
    img = Image.open(path).convert("RGB").resize((128, 128), Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=1, sort_keys=True)
        f.write("\n")


def main():
    expected = {"questions": {}, "images": {}}
    os.makedirs(os.path.join(OUT, "resized"), exist_ok=True)

    # CLEVR v1.0
    clevr = os.path.join(OUT, "CLEVR_v1.0")
    os.makedirs(os.path.join(clevr, "images", "val"), exist_ok=True)
    os.makedirs(os.path.join(clevr, "questions"), exist_ok=True)
    for i in range(2):
        name = f"CLEVR_val_{i:06d}.png"
        render(i).save(os.path.join(clevr, "images", "val", name))
    program = [
        {"inputs": [], "function": "scene", "value_inputs": []},
        {"inputs": [0], "function": "filter_color", "value_inputs": ["purple"]},
        {"inputs": [1], "function": "count", "value_inputs": []},
    ]
    val = [
        ("Are there more big green things than large purple shiny cubes?", "no", 0),
        ("What number of purple objects are there?", "2", 0),
        ("There is a small cylinder; what color is it?", "Purple", 1),
        ("Is the (large) red sphere made of the same material as the tiny cube?", "yes", 1),
    ]
    questions = [
        {
            "image_index": img,
            "program": program,
            "question_index": q,
            "image_filename": f"CLEVR_val_{img:06d}.png",
            "question_family_index": 29 + q,
            "split": "val",
            "answer": answer,
            "question": text,
        }
        for q, (text, answer, img) in enumerate(val)
    ]
    info = {"split": "val", "license": "Creative Commons Attribution (CC BY 4.0)",
            "version": "1.0", "date": "2/14/2017"}
    write_json(os.path.join(clevr, "questions", "CLEVR_val_questions.json"),
               {"info": info, "questions": questions})
    test = [
        {"image_index": 0, "split": "test", "image_filename": "CLEVR_test_000000.png",
         "question_index": 0, "question": "How many cubes are there?"},
    ]
    write_json(os.path.join(clevr, "questions", "CLEVR_test_questions.json"),
               {"info": dict(info, split="test"), "questions": test})
    expected["questions"]["CLEVR_val"] = [tokens(q["question"]) for q in questions]
    for i in range(2):
        name = f"CLEVR_val_{i:06d}.png"
        out = f"resized/CLEVR_val_{i:06d}.npy"
        np.save(os.path.join(OUT, out), resized(os.path.join(clevr, "images", "val", name)))
        expected["images"][f"CLEVR_v1.0/images/val/{name}"] = out

    # CLEVR-XAI v1.0
    xai = os.path.join(OUT, "CLEVR-XAI_v1.0")
    gt = os.path.join(xai, "ground_truth_simple_questions_single_object")
    images = os.path.join(OUT, "CLEVR-XAI_v1.0_images_masks", "images")
    os.makedirs(gt, exist_ok=True)
    os.makedirs(images, exist_ok=True)
    render(7).save(os.path.join(images, "CLEVR_unique_000000.png"))
    xai_program = [
        {"type": "scene", "inputs": [], "value_inputs": [], "_output": [0, 1, 2]},
        {"type": "filter_color", "inputs": [0], "value_inputs": ["yellow"], "_output": [2]},
        {"type": "unique", "inputs": [1], "value_inputs": [], "_output": 2},
        {"type": "query_material", "inputs": [2], "value_inputs": [], "_output": "metal"},
    ]
    simple = [
        ("What is the small yellow sphere made of?", "metal"),
        ("Is there a cyan cube?", True),
        ("How many red things are there?", 0),
    ]
    xai_questions = [
        {
            "split": "unique",
            "image_filename": "CLEVR_unique_000000.png",
            "image_index": 0,
            "image": "CLEVR_unique_000000",
            "question": text,
            "program": xai_program,
            "answer": answer,
            "template_filename": "compare_integer.json",
            "question_family_index": 3,
            "question_index": q,
        }
        for q, (text, answer) in enumerate(simple)
    ]
    info_xai = {"split": "unique", "version": "1.0", "date": "2020"}
    write_json(os.path.join(xai, "CLEVR-XAI_simple_questions.json"),
               {"info": info_xai, "questions": xai_questions})
    rng = np.random.default_rng(3)
    for q in (0, 1):  # question 2 has no target object, hence no mask
        mask = np.zeros((128, 128), dtype=bool)
        r, c = rng.integers(10, 100, 2)
        mask[r:r + 17, c:c + 23] = True
        np.save(os.path.join(gt, f"{q}.npy"), mask)
    write_json(os.path.join(gt, "first_stats.json"), {"questions": 3, "masks": 2})
    expected["questions"]["CLEVR-XAI_simple"] = [tokens(q["question"]) for q in xai_questions]
    out = "resized/CLEVR_unique_000000.npy"
    np.save(os.path.join(OUT, out), resized(os.path.join(images, "CLEVR_unique_000000.png")))
    expected["images"]["CLEVR-XAI_v1.0_images_masks/images/CLEVR_unique_000000.png"] = out

    # An upscale of a small RGB image of noise.
    small = Image.fromarray(np.random.default_rng(5).integers(0, 256, (23, 37, 3), np.uint8))
    small.save(os.path.join(OUT, "resized", "noise_37x23.png"))
    np.save(os.path.join(OUT, "resized", "noise_37x23.npy"),
            resized(os.path.join(OUT, "resized", "noise_37x23.png")))
    expected["images"]["resized/noise_37x23.png"] = "resized/noise_37x23.npy"
    expected["pillow"] = PIL.__version__
    write_json(os.path.join(OUT, "expected.json"), expected)


if __name__ == "__main__":
    main()

"""A small, learnable, offline ImageFolder dataset, byte-identical for the same seed.

Class i is a shape in a colour with a striped texture of its own frequency and angle; each image
moves, scales and jitters it over a noisy background, so a network must learn the class, not a
fixed picture.
"""

from __future__ import annotations

import colorsys
from pathlib import Path

import numpy as np
from PIL import Image

from alexnet.config import SyntheticConfig

SHAPES = ("circle", "square", "triangle", "stripes", "ring", "cross", "diamond", "ellipse")
COLOURS = {
    "red": 0.0,
    "yellow": 0.15,
    "green": 0.33,
    "cyan": 0.5,
    "blue": 0.62,
    "purple": 0.77,
    "pink": 0.9,
    "orange": 0.07,
}
FIRST_WNID = 90_000_000
CLASSES_FILE = "classes.txt"
JPEG_QUALITY = 90


def wnid(index: int) -> str:
    return f"n{FIRST_WNID + index}"


def class_design(index: int) -> dict:
    """Shape, colour and texture of class `index`: (shape, colour) pairs are distinct for 64 classes."""
    shape = SHAPES[index % len(SHAPES)]
    colour = list(COLOURS)[(index + index // len(SHAPES)) % len(COLOURS)]
    return {
        "name": f"{colour} {shape}",
        "shape": shape,
        "hue": COLOURS[colour],
        "frequency": 2.0 + (index * 5) % 7,
        "angle": np.pi * ((index * 3) % 8) / 8,
    }


def _shape_mask(shape: str, dx: np.ndarray, dy: np.ndarray, radius: float) -> np.ndarray:
    distance = np.hypot(dx, dy)
    inside_square = (np.abs(dx) < radius) & (np.abs(dy) < radius)
    masks = {
        "circle": lambda: distance < radius,
        "square": lambda: (np.abs(dx) < 0.8 * radius) & (np.abs(dy) < 0.8 * radius),
        "triangle": lambda: (dy < 0.7 * radius) & (np.abs(dx) < 0.6 * (dy + radius)),
        "stripes": lambda: inside_square & (np.sin(dx / radius * np.pi * 3) > 0),
        "ring": lambda: (distance < radius) & (distance > 0.55 * radius),
        "cross": lambda: ((np.abs(dx) < 0.3 * radius) | (np.abs(dy) < 0.3 * radius)) & inside_square,
        "diamond": lambda: np.abs(dx) + np.abs(dy) < radius,
        "ellipse": lambda: (dx / radius) ** 2 + (dy / (0.5 * radius)) ** 2 < 1,
    }
    return masks[shape]()


def render(design: dict, size: int, rng: np.random.Generator) -> np.ndarray:
    """One image of a class: HxWx3 uint8."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    background_tint = rng.uniform(60, 190, size=3)
    image = background_tint + rng.normal(0, 25, size=(size, size, 3))
    radius = size * rng.uniform(0.2, 0.35)
    centre_x, centre_y = size * rng.uniform(0.3, 0.7, size=2)
    dx, dy = x - centre_x, y - centre_y
    mask = _shape_mask(design["shape"], dx, dy, radius)
    hue = (design["hue"] + rng.normal(0, 0.02)) % 1.0
    colour = 255 * np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.7, 1.0), rng.uniform(0.75, 1.0)))
    angle = design["angle"] + rng.normal(0, 0.1)
    wave = np.sin(
        2 * np.pi * design["frequency"] * (x * np.cos(angle) + y * np.sin(angle)) / size
        + rng.uniform(0, 2 * np.pi)
    )
    texture = colour * (0.75 + 0.25 * wave)[..., None]
    image[mask] = texture[mask] + rng.normal(0, 8, size=(int(mask.sum()), 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def generate(cfg: SyntheticConfig, seed: int, root: Path) -> Path:
    """Write <root>/{train,val}/<wnid>/<wnid>_<i>.JPEG and <root>/classes.txt; return root."""
    root = Path(root)
    counts = {"train": cfg.train_per_class, "val": cfg.val_per_class}
    lines = []
    for index in range(cfg.classes):
        design = class_design(index)
        lines.append(f"{wnid(index)} {design['name']}\n")
        for split_number, (split, count) in enumerate(counts.items()):
            folder = root / split / wnid(index)
            folder.mkdir(parents=True, exist_ok=True)
            for number in range(count):
                rng = np.random.default_rng([seed, index, split_number, number])
                pixels = render(design, cfg.image_size, rng)
                Image.fromarray(pixels).save(folder / f"{wnid(index)}_{number}.JPEG", quality=JPEG_QUALITY)
    (root / CLASSES_FILE).write_text("".join(lines))
    return root

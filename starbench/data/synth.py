"""Procedural synthetic faces written in the real RaFD and CelebA layouts.

Why: every command must run on a fresh machine with no download, and RaFD cannot be
redistributed. The faces are drawn with Pillow from a few parameters so that the cues the paper's
tasks depend on are present and learnable:

- identity (constant across a subject's images): skin tone, face width/height, eye spacing and
  size, nose length, mouth width, hair colour and style;
- RaFD expression through brows, eye opening and mouth shape, each distinct at 32 px;
  gaze through the pupils; camera angle as a small head turn;
- CelebA hair colour (black/blond/brown, or gray/red for none of the three), gender (hair length,
  jaw, stubble, lipstick) and age (wrinkles, eye bags, paler skin).

Output is deterministic for a given seed (identical bytes), and the files are named and listed
exactly like the real datasets so that the real loaders read them.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image, ImageDraw

from starbench.errors import StarbenchError

RAFD_EXPRESSIONS = ("angry", "contemptuous", "disgusted", "fearful", "happy", "neutral", "sad", "surprised")
RAFD_GAZES = ("left", "frontal", "right")
RAFD_ANGLES = ("045", "090", "135")
CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose Black_Hair "
    "Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee Gray_Hair Heavy_Makeup "
    "High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard Oval_Face Pale_Skin Pointy_Nose "
    "Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair Wavy_Hair Wearing_Earrings Wearing_Hat "
    "Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()

HAIR_COLOURS = {
    "black": (28, 24, 22),
    "blond": (226, 196, 120),
    "brown": (112, 70, 38),
    "gray": (172, 170, 168),
    "red": (170, 60, 30),
}
SKIN_TONES = {
    "Caucasian": ((236, 200, 178), (222, 180, 150)),
    "Moroccan": ((198, 150, 110), (170, 120, 86)),
    "Kid": ((240, 206, 182), (196, 150, 112)),
}

# Expression -> (inner brow dy, outer brow dy, eye opening, mouth shape); dy in face half-widths,
# negative is up.
EXPRESSION_SHAPES: dict[str, tuple[float, float, float, str]] = {
    "angry": (0.14, -0.06, 0.70, "tight"),
    "contemptuous": (0.00, 0.00, 0.85, "smirk"),
    "disgusted": (0.10, 0.06, 0.45, "sneer"),
    "fearful": (-0.20, -0.04, 1.45, "stretch"),
    "happy": (-0.04, -0.04, 0.65, "smile"),
    "neutral": (0.00, 0.00, 1.00, "line"),
    "sad": (-0.14, 0.08, 0.80, "frown"),
    "surprised": (-0.22, -0.22, 1.55, "oval"),
}


@dataclass(frozen=True)
class Identity:
    """Traits that stay the same across all images of one person."""

    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    hair_style: str  # short | long | bangs
    face_w: float  # face half-width as a fraction of the image width
    face_h: float  # face half-height / half-width
    eye_dx: float  # eye distance from the centre line, in face half-widths
    eye_r: float  # eye radius, in face half-widths
    nose_len: float
    mouth_w: float
    iris: tuple[int, int, int]
    male: bool = False
    aged: bool = False
    kid: bool = False


def _jitter(rng: np.random.Generator, colour: tuple[int, int, int], amount: int) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)  # type: ignore


def random_identity(rng: np.random.Generator, ethnicity: str = "Caucasian", male: bool = False,
                    hair: Optional[str] = None, aged: bool = False) -> Identity:
    lo, hi = SKIN_TONES[ethnicity]
    t = rng.random()
    skin = tuple(int(a + (b - a) * t) for a, b in zip(lo, hi))
    if aged:
        skin = tuple(int(c * 0.9 + 200 * 0.1) for c in skin)
    kid = ethnicity == "Kid"
    hair_name = hair or str(rng.choice(["black", "brown", "blond", "black", "brown"]))
    style = "short" if male else str(rng.choice(["long", "bangs"]))
    return Identity(
        skin=_jitter(rng, skin, 8),  # type: ignore[arg-type]
        hair=_jitter(rng, HAIR_COLOURS[hair_name], 10),
        hair_style=style,
        face_w=float(rng.uniform(0.25, 0.29) if not kid else rng.uniform(0.24, 0.27)),
        face_h=float(rng.uniform(1.22, 1.40) if not kid else rng.uniform(1.12, 1.22)),
        eye_dx=float(rng.uniform(0.36, 0.46)),
        eye_r=float(rng.uniform(0.13, 0.16) if not kid else rng.uniform(0.16, 0.19)),
        nose_len=float(rng.uniform(0.20, 0.34)),
        mouth_w=float(rng.uniform(0.30, 0.42)),
        iris=_jitter(rng, tuple(rng.choice([(70, 110, 160), (90, 60, 30), (60, 100, 60)])), 15),  # type: ignore
        male=male, aged=aged, kid=kid)


def draw_face(img: Image.Image, ident: Identity, expression: str = "neutral", gaze: int = 0, turn: int = 0,
              centre: tuple[float, float] = (0.5, 0.52), smiling: bool = False, glasses: bool = False,
              stubble: bool = False, lipstick: bool = False) -> None:
    """Draw one face onto ``img`` in place. ``gaze`` and ``turn`` are -1 (left), 0 or 1 (right)."""
    W, H = img.size
    d = ImageDraw.Draw(img)
    s = ident.face_w * W  # face half-width in pixels: the unit of every feature below
    cx, cy = centre[0] * W, centre[1] * H
    fx = cx + turn * 0.10 * s  # features move with the head turn
    fh = ident.face_h * s
    lw = max(1, round(0.06 * s))
    dark = (40, 25, 25)

    # Hair behind the head, neck and shoulders.
    if ident.hair_style == "long":
        d.rectangle([cx - 1.25 * s, cy - 0.6 * fh, cx + 1.25 * s, cy + 1.25 * fh], fill=ident.hair)
    d.rectangle([cx - 0.42 * s, cy + 0.7 * fh, cx + 0.42 * s, cy + 1.6 * fh], fill=ident.skin)
    shirt = (80, 90, 120) if ident.male else (140, 70, 90)
    d.ellipse([cx - 2.0 * s, cy + 1.2 * fh, cx + 2.0 * s, cy + 2.6 * fh], fill=shirt)
    d.ellipse([cx - 1.12 * s, cy - 1.12 * fh, cx + 1.12 * s, cy + 0.3 * fh], fill=ident.hair)
    # Ears (the far one hides when the head turns), face.
    for side in (-1, 1):
        if turn == 0 or side == -turn:
            ex = cx + side * 0.98 * s - turn * 0.05 * s
            d.ellipse([ex - 0.14 * s, cy - 0.18 * s, ex + 0.14 * s, cy + 0.22 * s], fill=ident.skin)
    w_face = s * (1 - 0.06 * abs(turn))
    jaw = 1.08 if ident.male else 0.96
    d.ellipse([cx - w_face, cy - fh, cx + w_face, cy + fh * jaw], fill=ident.skin)
    if stubble:
        shade = tuple(int(c * 0.78) for c in ident.skin)
        d.chord([cx - w_face * 0.92, cy + 0.05 * fh, cx + w_face * 0.92, cy + fh * jaw], 20, 160, fill=shade)
        d.ellipse([fx - 0.5 * s, cy + 0.34 * fh, fx + 0.5 * s, cy + 0.62 * fh], fill=ident.skin)
    # Hair cap over the forehead, bangs.
    d.chord([cx - 1.06 * s, cy - 1.1 * fh, cx + 1.06 * s, cy - 0.05 * fh], 180, 360, fill=ident.hair)
    if ident.hair_style == "bangs":
        d.rectangle([cx - 0.9 * s, cy - 0.75 * fh, cx + 0.9 * s, cy - 0.45 * fh], fill=ident.hair)

    inner_dy, outer_dy, openness, mouth = EXPRESSION_SHAPES[expression]
    if smiling:
        mouth, openness = "smile", min(openness, 0.7)
    eye_y = cy - 0.12 * fh
    er = ident.eye_r * s
    # Brows: inner and outer ends move with the expression (drawn thick so they read at 32 px).
    brow_y = eye_y - 1.9 * er
    for side in (-1, 1):
        ex = fx + side * ident.eye_dx * s
        dy_in, dy_out = inner_dy, outer_dy
        if expression == "contemptuous" and side == 1:
            dy_in, dy_out = -0.10, -0.12
        inner = (ex - side * 1.0 * er, brow_y + dy_in * s)
        outer = (ex + side * 1.3 * er, brow_y + dy_out * s)
        brow_col = tuple(int(c * 0.6) for c in ident.hair) if ident.hair != HAIR_COLOURS["black"] else dark
        d.line([inner, outer], fill=brow_col, width=max(1, round(0.085 * s * (1.3 if ident.male else 1.0))))
    # Eyes: white, iris, pupil looking in the gaze direction.
    for side in (-1, 1):
        ex = fx + side * ident.eye_dx * s
        ry = er * 0.62 * openness
        d.ellipse([ex - er, eye_y - ry, ex + er, eye_y + ry], fill=(250, 250, 248), outline=dark)
        ir = min(er * 0.55, max(ry, 1))
        px = ex + gaze * 0.42 * er
        d.ellipse([px - ir, eye_y - ir, px + ir, eye_y + ir], fill=ident.iris)
        d.ellipse([px - ir * 0.5, eye_y - ir * 0.5, px + ir * 0.5, eye_y + ir * 0.5], fill=(10, 10, 10))
        if ident.aged:
            d.arc([ex - er, eye_y + ry * 0.6, ex + er, eye_y + ry * 0.6 + 0.7 * er], 20, 160,
                  fill=tuple(int(c * 0.65) for c in ident.skin), width=max(1, lw // 2 + 1))
    if glasses:
        for side in (-1, 1):
            ex = fx + side * ident.eye_dx * s
            d.rectangle([ex - 1.5 * er, eye_y - 1.1 * er, ex + 1.5 * er, eye_y + 1.1 * er], outline=(20, 20, 20),
                        width=lw)
        bridge = [(fx - ident.eye_dx * s + 1.5 * er, eye_y), (fx + ident.eye_dx * s - 1.5 * er, eye_y)]
        d.line(bridge, fill=(20, 20, 20), width=lw)
    # Nose.
    nose_col = tuple(int(c * 0.72) for c in ident.skin)
    nx = fx + turn * 0.08 * s
    ny0, ny1 = eye_y + 0.15 * s, eye_y + (0.15 + ident.nose_len) * s
    d.line([(nx, ny0), (nx + 0.05 * s, ny1), (nx - 0.08 * s, ny1)], fill=nose_col, width=lw)
    if expression == "disgusted":
        for k in (-1, 1):
            d.line([(nx + k * 0.10 * s, ny0 + 0.02 * s), (nx + k * 0.22 * s, ny0 + 0.10 * s)], fill=nose_col, width=lw)
    # Wrinkles of age: forehead lines and nasolabial folds.
    if ident.aged:
        wr = tuple(int(c * 0.68) for c in ident.skin)
        for k in range(3):
            y = cy - 0.42 * fh - k * 0.09 * s
            d.arc([fx - 0.55 * s, y, fx + 0.55 * s, y + 0.16 * s], 200, 340, fill=wr, width=max(1, lw // 2 + 1))
        for k in (-1, 1):
            d.line([(nx + k * 0.22 * s, ny1 - 0.05 * s), (nx + k * 0.42 * s, ny1 + 0.38 * s)], fill=wr, width=lw)
    # Mouth.
    my = cy + 0.45 * fh
    mw = ident.mouth_w * s
    lip = (200, 40, 60) if lipstick else (150, 60, 60)
    inside = (70, 15, 20)
    teeth = (245, 245, 240)
    mlw = max(1, round(0.07 * s))
    if mouth == "line":
        d.line([(fx - mw, my), (fx + mw, my)], fill=lip, width=mlw)
    elif mouth == "tight":
        d.line([(fx - 0.75 * mw, my), (fx + 0.75 * mw, my)], fill=dark, width=mlw + 1)
        for k in (-1, 1):
            d.line([(fx + k * 0.75 * mw, my), (fx + k * 0.95 * mw, my + 0.25 * mw)], fill=dark, width=mlw)
    elif mouth == "smile":
        box = [fx - 1.2 * mw, my - 0.45 * mw, fx + 1.2 * mw, my + 0.75 * mw]
        d.chord(box, 0, 180, fill=inside, outline=lip, width=mlw)
        d.rectangle([fx - 0.9 * mw, my + 0.16 * mw, fx + 0.9 * mw, my + 0.32 * mw], fill=teeth)
    elif mouth == "frown":
        d.arc([fx - mw, my, fx + mw, my + 0.9 * mw], 200, 340, fill=lip, width=mlw + 1)
    elif mouth == "oval":
        d.ellipse([fx - 0.5 * mw, my - 0.45 * mw, fx + 0.5 * mw, my + 0.75 * mw], fill=inside, outline=lip, width=mlw)
    elif mouth == "stretch":
        d.ellipse([fx - 1.15 * mw, my - 0.2 * mw, fx + 1.15 * mw, my + 0.3 * mw], fill=inside, outline=lip, width=mlw)
        d.line([(fx - 0.9 * mw, my - 0.08 * mw), (fx + 0.9 * mw, my - 0.08 * mw)], fill=teeth, width=max(1, mlw // 2))
    elif mouth == "sneer":
        poly = [(fx - mw, my + 0.1 * mw), (fx - 0.3 * mw, my - 0.45 * mw), (fx + 0.5 * mw, my - 0.2 * mw),
                (fx + mw, my + 0.15 * mw), (fx, my + 0.3 * mw)]
        d.polygon(poly, fill=inside, outline=lip)
        d.line([(fx - 0.6 * mw, my - 0.18 * mw), (fx + 0.5 * mw, my - 0.05 * mw)], fill=teeth, width=max(1, mlw // 2))
    elif mouth == "smirk":
        d.line([(fx - mw, my + 0.05 * mw), (fx + 0.1 * mw, my), (fx + mw, my - 0.45 * mw)], fill=lip, width=mlw)
        d.ellipse([fx + 1.05 * mw, my - 0.6 * mw, fx + 1.25 * mw, my - 0.3 * mw], fill=nose_col)
    else:  # pragma: no cover - table and drawing out of step
        raise AssertionError(mouth)


def _finish(img: Image.Image, rng: np.random.Generator, noise: float = 3.0) -> Image.Image:
    """Per-image lighting change and sensor noise, so that no two photographs are identical."""
    arr = np.asarray(img, dtype=np.float32)
    arr = arr * rng.uniform(0.94, 1.06) + rng.normal(0.0, noise, size=arr.shape).astype(np.float32)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _atomic_dir(out: Path) -> Path:
    """A temporary sibling folder; the caller renames it onto ``out`` when complete."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def _publish(tmp: Path, out: Path) -> None:
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)


def rafd_subjects(n: int, rng: np.random.Generator) -> list[tuple[int, str, str]]:
    """(subject id, ethnicity, gender) for ``n`` subjects in roughly RaFD's proportions."""
    out = []
    for sid in range(1, n + 1):
        u = rng.random()
        eth = "Kid" if u < 0.15 else "Moroccan" if u < 0.42 else "Caucasian"
        out.append((sid, eth, "male" if rng.random() < 0.55 else "female"))
    return out


def rafd_filename(angle: str, subject: int, ethnicity: str, gender: str, expression: str, gaze: str) -> str:
    return f"Rafd{angle}_{subject:02d}_{ethnicity}_{gender}_{expression}_{gaze}.jpg"


def write_rafd(out: str | Path, subjects: int = 67, seed: int = 0, size: int = 256, layout: str = "raw",
               test_fraction: float = 0.1, progress: Optional[Callable[[int, int], None]] = None) -> Path:
    """Write a synthetic RaFD set: ``subjects`` x 8 expressions x 3 gazes x 3 angles JPEGs.

    ``layout="raw"`` puts every file, named like RaFD, directly in ``out``; ``layout="split"`` writes
    the public StarGAN code's ``train|test/<expression>/`` folders (test = a seeded 10% of subjects).
    """
    if layout not in ("raw", "split"):
        raise StarbenchError(f"synthetic RaFD layout '{layout}': expected raw or split")
    if subjects < 2 or size < 16:
        raise StarbenchError(f"synthetic RaFD needs subjects >= 2 and size >= 16 (got {subjects}, {size})")
    out = Path(out)
    tmp = _atomic_dir(out)
    rng = np.random.default_rng(seed)
    people = rafd_subjects(subjects, rng)
    n_test = max(1, round(subjects * test_fraction))
    test_ids = set(int(i) for i in np.random.default_rng(seed + 1).choice(subjects, n_test, replace=False) + 1)
    total, done = subjects * 72, 0
    for sid, eth, gender in people:
        ident = random_identity(np.random.default_rng([seed, sid]), eth, male=gender == "male")
        for expression in RAFD_EXPRESSIONS:
            if layout == "split":
                folder = tmp / ("test" if sid in test_ids else "train") / expression
                folder.mkdir(parents=True, exist_ok=True)
            else:
                folder = tmp
            for angle, turn in zip(RAFD_ANGLES, (-1, 0, 1)):
                for gaze_name, gaze in zip(RAFD_GAZES, (-1, 0, 1)):
                    img_rng = np.random.default_rng([seed, sid, RAFD_EXPRESSIONS.index(expression), turn + 1, gaze + 1])
                    img = Image.new("RGB", (size, size), _jitter(img_rng, (236, 236, 232), 6))
                    centre = (0.5 + img_rng.uniform(-0.015, 0.015), 0.47 + img_rng.uniform(-0.015, 0.015))
                    draw_face(img, ident, expression, gaze=gaze, turn=turn, centre=centre)
                    _finish(img, img_rng).save(folder / rafd_filename(angle, sid, eth, gender, expression, gaze_name),
                                               quality=92)
                    done += 1
                    if progress:
                        progress(done, total)
    _publish(tmp, out)
    return out


def write_celeba(out: str | Path, count: int = 2000, seed: int = 0,
                 progress: Optional[Callable[[int, int], None]] = None) -> Path:
    """Write a synthetic CelebA set: ``img_align_celeba/``, the attribute, partition and identity lists.

    About eight images per person (``identity_CelebA.txt``): face, skin and gender are the person's;
    hair colour, age, smile and glasses vary from image to image.

    Images are 178x218 like aligned CelebA. The five attributes the paper uses are drawn visibly;
    Gray_Hair, Smiling, Eyeglasses, Bangs, No_Beard, 5_o_Clock_Shadow, Wearing_Lipstick and
    Mouth_Slightly_Open follow what is drawn; the other attributes are -1.
    """
    if count < 10:
        raise StarbenchError(f"synthetic CelebA needs at least 10 images (got {count})")
    out = Path(out)
    tmp = _atomic_dir(out)
    (tmp / "img_align_celeba").mkdir()
    rng = np.random.default_rng([seed, 7])
    attr_lines, part_lines, id_lines = [], [], []
    col = {name: i for i, name in enumerate(CELEBA_ATTRIBUTES)}
    n_people = max(2, count // 8)  # like CelebA, each person appears in several images
    for i in range(1, count + 1):
        r = np.random.default_rng([seed, 7, i])
        person = int(r.integers(1, n_people + 1))
        pr = np.random.default_rng([seed, 8, person])  # the person's own traits: face, skin, gender
        male = bool(pr.random() < 0.42)
        base = random_identity(pr, str(pr.choice(["Caucasian", "Moroccan"], p=[0.7, 0.3])), male=male)
        young = bool(r.random() < 0.75)
        hair = str(r.choice(["black", "blond", "brown", "gray", "red"], p=[0.3, 0.25, 0.25, 0.1, 0.1]))
        if hair == "gray" and young:
            hair = "brown"
        ident = dataclasses.replace(base, hair=_jitter(r, HAIR_COLOURS[hair], 10), aged=not young,
                                    skin=base.skin if young else tuple(int(c * 0.9 + 20) for c in base.skin))
        smiling = bool(r.random() < 0.45)
        glasses = bool(r.random() < 0.08)
        stubble = male and bool(r.random() < 0.6)
        lipstick = (not male) and bool(r.random() < 0.6)
        img = Image.new("RGB", (178, 218), tuple(int(v) for v in r.integers(40, 230, size=3)))
        draw_face(img, ident, "neutral", gaze=0, turn=int(r.integers(-1, 2)), centre=(0.5, 0.55), smiling=smiling,
                  glasses=glasses, stubble=stubble, lipstick=lipstick)
        name = f"{i:06d}.jpg"
        _finish(img, r).save(tmp / "img_align_celeba" / name, quality=92)
        vals = [-1] * len(CELEBA_ATTRIBUTES)
        for attr, on in (("Black_Hair", hair == "black"), ("Blond_Hair", hair == "blond"),
                         ("Brown_Hair", hair == "brown"), ("Gray_Hair", hair == "gray"), ("Male", male),
                         ("Young", young), ("Smiling", smiling), ("Mouth_Slightly_Open", smiling),
                         ("Eyeglasses", glasses), ("Bangs", ident.hair_style == "bangs"),
                         ("No_Beard", not stubble), ("5_o_Clock_Shadow", stubble), ("Wearing_Lipstick", lipstick),
                         ("Bags_Under_Eyes", not young)):
            vals[col[attr]] = 1 if on else -1
        attr_lines.append(name + " " + " ".join(f"{v:2d}" for v in vals))
        id_lines.append(f"{name} {person}")
        u = rng.random()
        part_lines.append(f"{name} {0 if u < 0.8 else 1 if u < 0.9 else 2}")
        if progress:
            progress(i, count)
    with open(tmp / "list_attr_celeba.txt", "w") as f:
        f.write(f"{count}\n" + " ".join(CELEBA_ATTRIBUTES) + "\n" + "\n".join(attr_lines) + "\n")
    with open(tmp / "list_eval_partition.txt", "w") as f:
        f.write("\n".join(part_lines) + "\n")
    with open(tmp / "identity_CelebA.txt", "w") as f:
        f.write("\n".join(id_lines) + "\n")
    _publish(tmp, out)
    return out

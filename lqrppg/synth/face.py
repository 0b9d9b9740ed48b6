"""Subject appearance: a real face photo, cut out, recoloured and placed on a background.

A synthetic face must look enough like a face that the OpenCV Haar detector (what
real preprocessing uses) finds it, and must have real skin texture so that spatial
averaging behaves as on camera data. We therefore start from the one portrait that
ships on disk with scikit-image, ``skimage.data.astronaut()``, cut out the head and
shoulders with GrabCut (seeded, so deterministic), and build soft masks for skin,
hair and clothing. Each subject then gets its own skin tone, hair shade, clothing
colour, size, position, background and blood-perfusion map.

The geometry constants below were measured on that photo (512x512 RGB); the Haar
frontal-face cascade finds its face at :data:`PHOTO_FACE_BOX`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
from skimage import data as skdata

#: Head-and-shoulders region cut from the photo: x0, y0, x1, y1 (both shoulders inside).
PORTRAIT_BOX = (0, 0, 440, 340)
#: Haar face box in the full photo: x, y, w, h.
PHOTO_FACE_BOX = (177, 66, 95, 95)
#: Rows of suit added below the cut (as a fraction of its height) so upward motion never reveals its edge.
BOTTOM_EXTENSION = 0.5
#: Cheek patches (x0, y0, x1, y1 in the photo) that define the skin-colour model.
_CHEEK_PATCHES = ((190, 125, 215, 145), (235, 125, 260, 145))


@dataclass(frozen=True)
class Portrait:
    """The cut-out photo and its soft masks (all float32, same height and width).

    ``skin`` marks the skin that carries the pulse (face skin without eyes, teeth and
    hair); ``skin_colour`` is broader (the whole face including eyes, brows and lips,
    plus the neck) and only drives the skin-tone recolouring: darkening the skin but
    not the brows and eyes would invert the eye-region contrast the Haar detector
    relies on.
    """

    rgb: np.ndarray
    alpha: np.ndarray
    skin: np.ndarray
    skin_colour: np.ndarray
    hair: np.ndarray
    clothing: np.ndarray
    face_box: tuple[int, int, int, int]


def _ellipse(shape: tuple[int, int], centre: tuple[int, int], axes: tuple[int, int], angle: float = 0.0) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, centre, axes, angle, 0, 360, 1, -1)
    return mask.astype(bool)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    if n <= 1:
        return mask.astype(bool)
    return labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions that do not touch the border (holes in the silhouette)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8))
    h, w = mask.shape
    out = mask.copy()
    for i in range(1, n):
        x, y, bw, bh = stats[i, :4]
        if x > 0 and y > 0 and x + bw < w and y + bh < h:
            out[labels == i] = True
    return out


def _person_matte(photo: np.ndarray) -> np.ndarray:
    """Binary person mask of the photo cut, from GrabCut seeded with hand-placed hints."""
    x0, y0, x1, y1 = PORTRAIT_BOX
    crop = photo[y0:y1, x0:x1]
    hints = np.full(crop.shape[:2], cv2.GC_PR_BGD, np.uint8)

    def ellipse(centre: tuple[int, int], axes: tuple[int, int], angle: float, value: int, thickness: int = -1) -> None:
        cv2.ellipse(hints, (centre[0] - x0, centre[1] - y0), axes, angle, 0, 360, value, thickness)

    def rect(p: tuple[int, int], q: tuple[int, int], value: int) -> None:
        cv2.rectangle(hints, (p[0] - x0, p[1] - y0), (q[0] - x0, q[1] - y0), value, -1)

    ellipse((225, 100), (75, 90), 0, cv2.GC_PR_FGD)  # head and hair
    rect((60, 230), (370, 340), cv2.GC_PR_FGD)  # shoulders
    ellipse((209, 222), (90, 64), 12, cv2.GC_PR_FGD)  # inside the suit's neck ring
    ellipse((209, 222), (86, 60), 12, cv2.GC_FGD, 8)  # the neck ring itself (grey like the backdrop)
    ellipse((224, 108), (38, 50), 0, cv2.GC_FGD)  # face
    rect((90, 280), (330, 340), cv2.GC_FGD)  # chest
    rect((0, 0), (70, 230), cv2.GC_BGD)  # flag
    rect((370, 0), (440, 280), cv2.GC_BGD)  # shuttle model
    hints[:3, :] = cv2.GC_BGD
    cv2.setRNGSeed(0)  # GrabCut's GMM initialisation draws from OpenCV's global RNG
    cv2.grabCut(
        cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), hints, None, np.zeros((1, 65)), np.zeros((1, 65)), 5,
        cv2.GC_INIT_WITH_MASK,
    )
    person = (hints == cv2.GC_FGD) | (hints == cv2.GC_PR_FGD)
    return _fill_holes(_largest_component(person))


@functools.lru_cache(maxsize=1)
def load_portrait() -> Portrait:
    """Cut the head and shoulders out of the astronaut photo and build its masks (cached)."""
    photo = skdata.astronaut()
    x0, y0, x1, y1 = PORTRAIT_BOX
    person = _person_matte(photo)
    crop = photo[y0:y1, x0:x1]
    shape = crop.shape[:2]

    ycc = cv2.cvtColor(crop, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    cheeks = np.concatenate([ycc[b - y0 : d - y0, a - x0 : c - x0, 1:].reshape(-1, 2) for a, b, c, d in _CHEEK_PATCHES])
    diff = ycc[..., 1:] - cheeks.mean(axis=0)
    mahal = np.einsum("...i,ij,...j->...", diff, np.linalg.inv(np.cov(cheeks.T)), diff)

    fx, fy, fw, fh = PHOTO_FACE_BOX
    face_centre = (fx + fw // 2 - x0, fy + fh // 2 - y0)
    face_region = _ellipse(shape, (face_centre[0] + 1, face_centre[1] - 1), (55, 70))
    skin = (mahal < 5) & person & (ycc[..., 0] > 60) & face_region
    skin = cv2.morphologyEx(skin.astype(np.uint8), cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    skin = _largest_component(skin)
    core = np.zeros(shape, np.uint8)  # the face itself: skin plus eyes, brows and mouth
    cv2.fillConvexPoly(core, cv2.convexHull(np.argwhere(skin)[:, ::-1].astype(np.int32)), 1)
    core = cv2.dilate(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9))).astype(bool)
    skin_region = core | _ellipse(shape, (face_centre[0], face_centre[1] + 55), (38, 28))  # face and neck
    skin_colour = ((mahal < 12) & person & skin_region) | core
    head = _ellipse(shape, (225 - x0, 95 - y0), (80, 88)) & person
    hair = head & ~skin_region & (np.arange(shape[0])[:, None] < 165 - y0)
    hsv = cv2.cvtColor(crop, cv2.COLOR_RGB2HSV)
    clothing = person & ~head & (hsv[..., 1] > 100) & (hsv[..., 2] > 60)

    def soft(mask: np.ndarray, sigma: float) -> np.ndarray:
        return cv2.GaussianBlur(mask.astype(np.float32), (0, 0), sigma)

    layers = [crop.astype(np.float32), soft(person, 0.8), soft(skin, 1.0), soft(skin_colour, 2.0), soft(hair, 1.5),
              soft(clothing, 1.5)]
    pad = int(round(BOTTOM_EXTENSION * shape[0]))
    layers = [cv2.copyMakeBorder(x, 0, pad, 0, 0, cv2.BORDER_REPLICATE) for x in layers]
    # The replicated rows continue the suit; skin and hair must not leak into them.
    for x in layers[2:5]:
        x[shape[0] :] = 0.0
    rgb, alpha, skin_w, colour_w, hair_w, cloth_w = layers
    return Portrait(
        rgb=rgb, alpha=alpha, skin=skin_w, skin_colour=colour_w, hair=hair_w, clothing=cloth_w,
        face_box=(fx - x0, fy - y0, fw, fh),
    )


@dataclass(frozen=True)
class SubjectLook:
    """What makes one subject look different from another (drawn once per subject)."""

    skin_tone: float
    hair_shade: float
    clothing_hue_deg: float
    face_height: float
    face_centre: tuple[float, float]
    pulse_gain: float
    seed: int


def sample_look(
    rng: np.random.Generator, skin_tone: tuple[float, float], face_size: tuple[float, float]
) -> SubjectLook:
    """Draw a subject's appearance; ``seed`` drives its background and perfusion map.

    Hair darkens with skin tone, as it mostly does: blonde hair over a dark face also
    inverts the hair-forehead contrast, and the Haar detector then misses the face.
    """
    tone = float(rng.uniform(*skin_tone))
    return SubjectLook(
        skin_tone=tone,
        hair_shade=float(rng.uniform(0.35, 1.15 + 0.7 * min(tone, 0.0))),
        clothing_hue_deg=float(rng.uniform(-180.0, 180.0)),
        face_height=float(rng.uniform(*face_size)),
        face_centre=(float(rng.uniform(0.42, 0.58)), float(rng.uniform(0.36, 0.46))),
        pulse_gain=float(rng.uniform(0.7, 1.3)),
        seed=int(rng.integers(2**31)),
    )


def recolour_skin(rgb: np.ndarray, weight: np.ndarray, tone: float) -> np.ndarray:
    """Shift skin pixels toward a darker or lighter tone, keeping their texture.

    Darkening scales the channels unequally (blue and green lose most, as melanin
    absorbs short wavelengths more); lightening blends toward a pale skin colour.
    ``weight`` (0..1) limits the change to skin. The darkest tone (-1, a medium-dark
    brown) is as dark as the Haar detector still finds in every frame under motion,
    noise and light changes: darker faces (or bright eyes and teeth kept undarkened)
    made it miss frames, the detector's known bias toward light skin.
    """
    if tone < 0:
        target = rgb * (1.0 - (-tone) * np.array([0.45, 0.52, 0.58], np.float32))
    else:
        target = rgb + tone * 0.45 * (np.array([255.0, 228.0, 210.0], np.float32) - rgb)
    # Both shifts flatten the eyes, brows and mouth; restore some of their local contrast.
    local = cv2.GaussianBlur(target, (0, 0), 6.0)
    target = local + (target - local) * (1.0 + 0.5 * abs(tone))
    w = weight[..., None]
    return np.clip(rgb * (1.0 - w) + target * w, 0.0, 255.0).astype(np.float32)


def _rotate_hue(rgb: np.ndarray, weight: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate the hue of weighted pixels (changes the clothing colour, keeps its shading)."""
    hsv = cv2.cvtColor(rgb / 255.0, cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + degrees) % 360.0
    rotated = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255.0
    w = weight[..., None]
    return (rgb * (1.0 - w) + rotated * w).astype(np.float32)


def make_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """An indoor-looking backdrop: colour gradient, a few soft panels, mottled texture."""
    colours = rng.uniform(50.0, 210.0, size=(2, 3)).astype(np.float32)
    colours = 0.6 * colours + 0.4 * colours.mean(axis=1, keepdims=True)  # keep walls fairly unsaturated
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height + 1.0) / 2.0
    bg = colours[0] * (1.0 - ramp[..., None]) + colours[1] * ramp[..., None]
    for _ in range(int(rng.integers(1, 4))):
        x0, x1 = np.sort(rng.uniform(-0.2, 1.2, 2) * width).astype(int)
        y0, y1 = np.sort(rng.uniform(-0.2, 1.2, 2) * height).astype(int)
        panel = np.zeros((height, width), np.float32)
        cv2.rectangle(panel, (x0, y0), (x1, y1), 1.0, -1)
        panel = cv2.GaussianBlur(panel, (0, 0), 2.0)[..., None]
        bg = bg * (1 - 0.7 * panel) + 0.7 * panel * rng.uniform(40.0, 220.0, 3).astype(np.float32)
    coarse = rng.standard_normal((max(height // 24, 2), max(width // 24, 2), 4)).astype(np.float32)
    texture = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    bg = bg + 7.0 * texture[..., :1] + 2.5 * texture[..., 1:]  # mostly luminance, a little colour
    return np.clip(bg, 0.0, 255.0).astype(np.float32)


def _perfusion_map(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Smooth spatial variation of pulse strength over the skin (mean 1, about 0.6-1.4)."""
    coarse = rng.standard_normal((6, 6)).astype(np.float32)
    field = cv2.resize(coarse, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(1.0 + 0.2 * field, 0.4, 1.6)


def _highlight_map(shape: tuple[int, int], face_box: tuple[int, int, int, int]) -> np.ndarray:
    """Where specular highlights fall on a face: forehead, nose bridge and tip, cheekbones."""
    x, y, w, h = face_box
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    spots = ((0.5, 0.2, 0.16, 1.0), (0.5, 0.45, 0.06, 0.8), (0.5, 0.62, 0.07, 1.0), (0.3, 0.55, 0.08, 0.5),
             (0.7, 0.55, 0.08, 0.5))
    out = np.zeros(shape, np.float32)
    for u, v, size, gain in spots:
        out += gain * np.exp(-((xx - x - u * w) ** 2 + (yy - y - v * h) ** 2) / (2 * (size * w) ** 2))
    return np.minimum(out, 1.0)


@dataclass(frozen=True)
class SubjectLayers:
    """Pre-built image layers of one subject, ready for per-frame compositing.

    The person layers live on a canvas larger than the frame by ``margin`` on every
    side (so motion can bring more of the person into view); the frame at rest is the
    canvas shifted by ``-margin``. All are float32 and contiguous:

    - ``diffuse``: the person's diffuse colour premultiplied by the matte (RGB);
    - ``alpha``: the matte;
    - ``pulse``: what one unit of pulse adds (diffuse skin colour times perfusion,
      pulse gain and per-channel strength; zero off the skin, so only skin pulses);
    - ``highlight``: where specular light falls (white, so three equal channels).

    The ``background`` is frame-sized and static. ``face_box`` (x, y, w, h) and
    ``pivot`` (the neck point head rotations turn about) are in frame coordinates at rest.
    """

    diffuse: np.ndarray
    alpha: np.ndarray
    pulse: np.ndarray
    highlight: np.ndarray
    background: np.ndarray
    margin: int
    face_box: tuple[float, float, float, float]
    pivot: tuple[float, float]


def build_subject(
    look: SubjectLook,
    frame_width: int,
    frame_height: int,
    pulse_amplitude: float,
    channel_weights: tuple[float, float, float],
) -> SubjectLayers:
    """Compose a subject's layers at frame resolution from its look.

    ``pulse_amplitude`` is the peak-to-peak relative intensity change in green; the
    other channels scale by ``channel_weights`` relative to green.
    """
    portrait = load_portrait()
    rng = np.random.default_rng(look.seed)
    rgb = recolour_skin(portrait.rgb, portrait.skin_colour, look.skin_tone)
    rgb = rgb * (1.0 - portrait.hair[..., None] * (1.0 - look.hair_shade))
    rgb = _rotate_hue(np.clip(rgb, 0, 255), portrait.clothing, look.clothing_hue_deg)

    fx, fy, fw, fh = portrait.face_box
    scale = look.face_height * frame_height / fh
    margin = int(round(0.3 * max(frame_width, frame_height)))
    canvas_w, canvas_h = frame_width + 2 * margin, frame_height + 2 * margin
    centre_x = look.face_centre[0] * frame_width + margin
    centre_y = look.face_centre[1] * frame_height + margin
    to_canvas = np.float32([[scale, 0, centre_x - (fx + fw / 2) * scale], [0, scale, centre_y - (fy + fh / 2) * scale]])

    def place(image: np.ndarray) -> np.ndarray:
        """Scale a portrait layer onto the canvas (area-averaged when shrinking, to avoid aliasing)."""
        matrix = to_canvas
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            matrix = np.float32([[1, 0, to_canvas[0, 2]], [0, 1, to_canvas[1, 2]]])
        return cv2.warpAffine(image, matrix, (canvas_w, canvas_h), flags=cv2.INTER_LINEAR)

    highlight = place(_highlight_map(portrait.alpha.shape, portrait.face_box) * portrait.skin * portrait.alpha)
    alpha = place(portrait.alpha)
    diffuse = place(rgb * portrait.alpha[..., None])
    skin_w = place(portrait.skin) * _perfusion_map((canvas_h, canvas_w), rng)
    green = channel_weights[1]
    gains = pulse_amplitude * look.pulse_gain * np.array([w / green for w in channel_weights], np.float32)
    pulse = diffuse * skin_w[..., None] * gains

    face_w = fw * scale
    face_box = (centre_x - margin - face_w / 2, centre_y - margin - face_w / 2, face_w, face_w)
    pivot = (centre_x - margin, centre_y - margin + 0.75 * face_w)
    background = make_background(frame_width, frame_height, rng)

    def contiguous(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x, dtype=np.float32)

    return SubjectLayers(
        diffuse=contiguous(diffuse), alpha=contiguous(alpha), pulse=contiguous(pulse),
        highlight=contiguous(np.repeat(highlight[..., None], 3, axis=2)), background=contiguous(background),
        margin=margin, face_box=face_box, pivot=pivot,
    )

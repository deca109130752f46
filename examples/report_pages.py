"""The README's screenshots of `lmppm restore --report PAGE.html`: the before/after page for the folder of
noisy digits, and for a photo as a camera writes it (scikit-image's coffee through core/camera.py at the
indoor level, stored as the camera's JPEG), each opened in headless Chromium with the slider dragged and
the 1:1 crop of one spot shown.

    uv run python examples/report_pages.py      # writes examples/report_digits.png and report_photo.png
    uv run python examples/report_pages.py --quick --out DIR   # a 96-pixel photo; no screenshot without a browser

The pages and restored files go to OUT/report_pages/ (not committed); only the screenshots are kept.
"""

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import skimage.data
import torch

from lmppm_cli.core.camera import Shot, photograph, read_noise
from lmppm_cli.files.data import photo_tensor
from lmppm_cli.files.images import resize, tensor_to_image

parser = argparse.ArgumentParser(description="Screenshots of the before/after report page.")
parser.add_argument("--out", default=str(Path(__file__).parent))
parser.add_argument("--quick", action="store_true", help="a 96-pixel photo")
args = parser.parse_args()
here = Path(__file__).parent
out = Path(args.out)
work = out / "report_pages"
shutil.rmtree(work, ignore_errors=True)


def restore(inputs: list[Path], name: str) -> Path:
    page = work / f"{name}.html"
    command = [sys.executable, "-m", "lmppm_cli", "restore", *map(str, inputs), "-o", f"{work / name}/"]
    subprocess.run([*command, "--report", str(page), "--device", "cpu", "-q"], check=False)
    assert page.is_file(), page
    return page


def camera_jpeg(side: int) -> Path:
    """Coffee as a camera writes it indoors (shot 2e-3, read noise on Brooks' fit), a JPEG of quality 85."""
    clean = photo_tensor(skimage.data.coffee())
    clean = resize(clean, side * clean.shape[1] // clean.shape[2], side)
    shot = Shot(shot=2e-3, read=read_noise(2e-3, 0.0), sharpen=0.5)  # no JPEG yet: Pillow's below
    written, _ = photograph(clean, shot, torch.Generator().manual_seed(0))
    path = work / "camera" / "coffee.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    tensor_to_image(written).save(path, quality=85)  # 4:2:0, as cameras store photos
    return path


def screenshot(page: Path, target: Path, spot: tuple[float, float]) -> None:
    """The page in headless Chromium, the first slider at 30%, the 1:1 crop at `spot` of the first image."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or ""
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    try:
        browser.get(page.as_uri())
        split = browser.find_element(By.CSS_SELECTOR, ".row:not(.failed) .split")
        ActionChains(browser).drag_and_drop_by_offset(split, -split.size["width"] // 5, 0).perform()
        image = browser.find_element(By.CSS_SELECTOR, ".row:not(.failed) .cmp")
        x, y = (int((f - 0.5) * image.size[k]) for f, k in zip(spot, ("width", "height")))
        ActionChains(browser).move_to_element_with_offset(image, x, y).click().perform()
        browser.implicitly_wait(2)
        browser.save_screenshot(str(target))
    finally:
        browser.quit()


digits = restore(sorted((here / "noisy_digits").glob("*.png")), "digits")
photo = restore([camera_jpeg(96 if args.quick else 640)], "photo")
if shutil.which("chromium") and shutil.which("chromedriver"):
    screenshot(digits, out / "report_digits.png", (0.5, 0.5))
    screenshot(photo, out / "report_photo.png", (0.45, 0.35))
    print(f"wrote {out / 'report_digits.png'} and {out / 'report_photo.png'}")
else:
    print("no chromium and chromedriver here: the pages are written, the screenshots are not")
print(f"pages: {digits} {photo}")

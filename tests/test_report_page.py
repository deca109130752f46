"""The before/after page of `lmppm restore --report PAGE.html` (issue 45): its structure read as text (one
row per image, escaped names, relative links, failures with their reason, no external URL), and the page
itself driven in headless Chromium: the slider moves the split, a click shows the 1:1 crop, and every
request it makes stays on this machine."""

import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from lmppm_cli.cli import app

HOSTILE = "<img src=x onerror=alert(1)>.png"  # a file name cannot hold a slash, so no </script>


def _digit(path: Path, seed: int, size: int = 28) -> None:
    rng = np.random.default_rng(seed)
    image = np.zeros((size, size), np.uint8)
    image[6:22, 12:16] = 255
    noisy = np.clip(image + rng.normal(0, 60, image.shape), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(noisy).save(path)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("page")
    for i in range(3):
        _digit(root / "in" / f"digit_{i}.png", i)
    _digit(root / "in" / HOSTILE, 7)
    _digit(root / "in" / "tiny.png", 8, size=4)  # copied unchanged
    (root / "in" / "broken.png").write_bytes(b"\x89PNG not really")
    args = ["restore", str(root / "in"), "-o", str(root / "out"), "--report", str(root / "report" / "page.html")]
    done = CliRunner().invoke(app, [*args, "--report", str(root / "report" / "rows.csv"), "--device", "cpu"])
    assert done.exit_code == 1, done.output  # the broken file failed, the others were written
    return root / "report" / "page.html"


def test_the_page_has_one_row_per_image_escaped_names_and_relative_links(page):
    text = page.read_text()
    rows = re.findall(r'<section class="row[^"]*"', text)
    assert len(rows) == 6 and sum("failed" in r for r in rows) == 1
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(1)&gt;.png" in text  # shown as text
    failed = re.search(r'<section class="row failed".*?</section>', text, re.S).group(0)
    assert "broken.png" in failed and '<p class="error">' in failed
    assert "copied unchanged" in text and "6 image(s)" in text and "1 failed" in text
    assert not re.search(r"(?i)(https?|ftp|wss?):|=\"//|url\(", text)  # nothing from outside
    links = re.findall(r'(?:href|data-before|data-after)="([^"]+)"', text)
    assert len(links) >= 10 and not any(link.startswith("/") for link in links)
    for link in links:
        assert (page.parent / unquote(link.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))).is_file()
    thumbs = re.findall(r'src="data:image/(png|jpeg);base64,', text)
    assert len(thumbs) == 2 * 5
    assert (page.parent / "rows.csv").read_text().count("\n") == 7  # the table beside it: header, 5 rows, 1 failed


def test_the_most_changed_images_come_first(page):
    changes = [float(v) for v in re.findall(r'data-change="([-0-9.]+)"', page.read_text())]
    assert changes[0] == -1  # the failed file first
    assert changes[1:] == sorted(changes[1:], reverse=True) and changes[-1] == 0.0  # tiny.png, unchanged, last


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = shutil.which("chromium") or shutil.which("chromium-headless-shell"), shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip("no browser: the page test needs Debian's chromium and chromium-driver (.ci/run installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1000"):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def test_the_page_in_headless_chromium_slides_zooms_and_stays_local(page, tmp_path):
    import json

    pytest.importorskip("selenium")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    browser = _browser()
    try:
        browser.get(page.as_uri())
        first = browser.find_element(By.CSS_SELECTOR, ".row:not(.failed) .cmp")
        split = browser.find_element(By.CSS_SELECTOR, ".row:not(.failed) .split")
        assert browser.execute_script("return arguments[0].style.getPropertyValue('--split')", first) == ""
        ActionChains(browser).drag_and_drop_by_offset(split, -split.size["width"] // 2 + 2, 0).perform()
        moved = browser.execute_script("return arguments[0].style.getPropertyValue('--split')", first)
        assert moved.endswith("%") and float(moved[:-1]) < 20, moved
        first.click()
        zoom = browser.find_element(By.ID, "zoom")
        assert zoom.is_displayed()
        browser.implicitly_wait(2)
        loaded = "return document.getElementById(arguments[0]).naturalWidth"
        assert browser.execute_script(loaded, "zb") > 0 and browser.execute_script(loaded, "za") > 0
        shot = tmp_path / "page.png"
        browser.save_screenshot(str(shot))
        assert Image.open(shot).size[0] > 0
        requests = [json.loads(e["message"])["message"] for e in browser.get_log("performance")]
        urls = [m["params"]["request"]["url"] for m in requests if m["method"] == "Network.requestWillBeSent"]
        assert urls and all(u.startswith(("file:", "data:")) for u in urls), urls
    finally:
        browser.quit()


def test_the_bench_page_holds_the_tables_and_figures_of_its_folder(tmp_path, monkeypatch):
    """run_bench writes results.html from what the suite wrote: results.md's tables (intervals kept),
    its notes escaped, and every figure linked by a relative path."""
    from lmppm_cli.experiments import bench

    def fake_suite(out_dir, on_stage=None, **options):
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        table = "| method | PSNR |\n|---|---|\n| LMPPM | 21.3 +- 0.4 |\n| BM3D | 20.1 +- 0.5 |\n"
        (folder / "results.md").write_text(f"# lmppm bench: fake\n\n{table}\n- a <b>note</b> with `code`\n")
        Image.new("L", (8, 8)).save(folder / "grid noise.png")
        return []

    monkeypatch.setitem(bench.STANDALONE, "speed", fake_suite)
    bench.run_bench("speed", tmp_path / "b", bench.BenchOptions())
    text = (tmp_path / "b" / "results.html").read_text()
    assert text.count("<tr>") == 3 and "<td>21.3 +- 0.4</td>" in text and "<th>PSNR</th>" in text
    assert "a &lt;b&gt;note&lt;/b&gt; with <code>code</code>" in text and "<b>" not in text
    assert 'src="grid%20noise.png"' in text and (tmp_path / "b" / "grid noise.png").is_file()
    assert not re.search(r"(?i)(https?|ftp|wss?):|=\"//|url\(", text)

"Open a page in headless Chromium and report which of its images loaded (the tests skip when Chromium is absent)."
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium() -> str:
    "The Chromium executable, or skip the test that needs it."
    exe = next((shutil.which(n) for n in CHROMIUM_NAMES if shutil.which(n)), None)
    if exe is None: pytest.skip(f"no Chromium ({', '.join(CHROMIUM_NAMES)}) on PATH; on Debian: apt install chromium")
    return exe


def _headless(exe, *args, timeout=120) -> str:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout


def images_loaded(page: Path) -> dict[str, bool]:
    """Each image of `page` (its src) and whether Chromium loaded it, read through a same-folder frame once the page
    loaded."""
    exe, page = chromium(), Path(page).resolve()
    probe = page.with_name(f".{page.stem}_image_check.html")
    probe.write_text(f"""<html><body><iframe id="page" src="{page.name}" width="1200" height="900"></iframe><script>
document.getElementById("page").onload = () => {{
  const images = [...document.getElementById("page").contentDocument.images];
  const loaded = images.map(i => [i.getAttribute("src"), i.complete && i.naturalWidth > 0]);
  document.body.setAttribute("data-images", JSON.stringify(loaded));
}};
</script></body></html>""")
    try: dom = _headless(exe, "--virtual-time-budget=15000", "--dump-dom", probe.as_uri())
    finally: probe.unlink(missing_ok=True)
    found = re.search(r'data-images="([^"]*)"', dom)
    assert found, f"Chromium did not report the images of {page}; its DOM began: {dom[:300]!r}"
    return dict(json.loads(html.unescape(found.group(1))))


def screenshot(page: Path, png: Path, width=1100, height=1400) -> Path:
    "A PNG of `page` as Chromium draws it at `width` x `height` pixels."
    _headless(chromium(), f"--window-size={width},{height}", "--hide-scrollbars", f"--screenshot={Path(png).resolve()}",
              Path(page).resolve().as_uri())
    return Path(png)

"The documentation site (`make docs`) built from this repository: every page there, every link and image loads."
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from browser import images_loaded  # noqa: E402
from optional import import_or_skip  # noqa: E402

from simsiam_collapse.docs import broken_links, build_docs, build_site, page_path  # noqa: E402

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("docs")/"site"
    return site, {str(p.relative_to(site)) for p in build_docs(site, ROOT)}


def test_the_site_has_every_page_and_no_broken_link(site):
    site, pages = site
    sources = ["README.md", "GUIDE.md", "results/mini/REPORT.md", "nbs/index.ipynb"]
    for pattern in ("nbs/[0-9][0-9]_*.ipynb", "results/mini/e*_*.ipynb", "nbs/tutorials/*.ipynb"):
        sources += [str(p.relative_to(ROOT)) for p in ROOT.glob(pattern)]
    assert len(sources) > 25 and {page_path(s) for s in sources} <= pages
    assert broken_links(site) == []


def test_the_pages_show_their_figures_in_a_browser(site):
    "Headless Chromium (skipped without it): the report's figures and an executed notebook's load."
    site, _ = site
    for page in ("results/mini/REPORT.html", "results/mini/e6_orderings.html", "index.html"):
        loaded = images_loaded(site/page)
        assert loaded or page == "index.html", f"{page} shows no image"  # the report and the notebook have figures
        assert all(loaded.values()), f"{page}: images that did not load: {[k for k, v in loaded.items() if not v]}"


def test_make_docs_writes_nothing_into_the_checkout(tmp_path):
    "The site from a read-only checkout (as on a shared cluster): its files stay as they were, to the nanosecond."
    import shutil
    import stat
    checkout = tmp_path/"checkout"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(".git", ".venv", "_site", "_proc", "reproduction",
                                                                   "runs", "mutants", "__pycache__", "*.egg-info"))
    for p in [checkout, *checkout.rglob("*")]: p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = {p: p.stat().st_mtime_ns for p in checkout.rglob("*")}
    pages = build_site(tmp_path/"site", checkout)
    assert {p: p.stat().st_mtime_ns for p in checkout.rglob("*")} == before  # nbdev wrote nbs/nbdev.yml and _proc/
    assert tmp_path/"site"/"nbs"/"06_collapse.html" in pages and broken_links(tmp_path/"site") == []
    page = (tmp_path/"site"/"nbs"/"06_collapse.html").read_text()
    assert "show_doc" not in page  # the processor ran
    assert "5: 0.748, 10: 0.8449" in page  # the notebooks were executed: an example's output (official AUCs) shows


def test_the_front_page_counts_the_experiment_notebooks():
    "nbs/index.ipynb (the docs' overview) said 'nine' after E10 made ten."
    words = {9: "nine", 10: "ten", 11: "eleven", 12: "twelve"}
    count = len(list((ROOT/"nbs"/"paper").glob("e[0-9]*_*.ipynb")))
    assert f"runs the {words[count]} experiment notebooks" in (ROOT/"nbs"/"index.ipynb").read_text()


def test_formulas_render_offline_from_the_sites_own_mathjax(site):
    "Notebook pages loaded MathJax from a CDN: offline, and on many clusters, formulas stayed raw LaTeX."
    site, _ = site
    import_or_skip("jupyter_server_mathjax", reason="the dev requirement that ships MathJax")
    page = (site/"nbs"/"06_collapse.html").read_text()
    scripts = [s for s in re.findall(r'<script[^>]*src="([^"]*)"', page) if "MathJax" in s]
    assert scripts and all(not s.startswith(("http:", "https:", "//")) for s in scripts), scripts
    assert (site/"nbs"/scripts[0].split("?")[0]).resolve().is_file()


def test_every_page_searches_the_whole_site(site):
    "A search box on every page, over an index of every page's text that loads from disk (no server)."
    import json
    site, pages = site
    text = (site/"search.js").read_text()
    index = json.loads(text[text.index("["):text.rindex("]") + 1])
    assert {p["url"] for p in index} >= pages - {"search.js"} and len(index) > 25
    collapse = next(p for p in index if p["url"] == "nbs/06_collapse.html")
    assert "spectrumaccumulator" in collapse["text"] and "window.search_index" not in collapse["text"]
    page = (site/"nbs"/"06_collapse.html").read_text()
    assert 'id="site-search"' in page and 'src="../search.js"' in page

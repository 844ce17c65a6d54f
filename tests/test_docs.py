"The documentation site (`make docs`) built from this repository: every page there, every link and image loads."
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from browser import images_loaded  # noqa: E402

from simsiam_collapse.docs import broken_links, build_docs, page_path  # noqa: E402

ROOT = Path(__file__).parents[1]


def test_the_site_has_every_page_and_no_broken_link(tmp_path):
    site = tmp_path/"site"
    pages = {str(p.relative_to(site)) for p in build_docs(site, ROOT)}
    sources = ["README.md", "GUIDE.md", "results/mini/REPORT.md", "nbs/index.ipynb"]
    sources += [str(p.relative_to(ROOT)) for p in ROOT.glob("nbs/[0-9][0-9]_*.ipynb")]
    sources += [str(p.relative_to(ROOT)) for p in ROOT.glob("results/mini/e*_*.ipynb")]
    sources += [str(p.relative_to(ROOT)) for p in ROOT.glob("nbs/tutorials/*.ipynb")]
    assert len(sources) > 25 and {page_path(s) for s in sources} <= pages
    assert broken_links(site) == []
    # in a browser (headless Chromium; skipped without it): the report's figures and an executed notebook's load
    for page in ("results/mini/REPORT.html", "results/mini/e6_orderings.html", "index.html"):
        loaded = images_loaded(site/page)
        assert loaded or page == "index.html", f"{page} shows no image"  # the report and the notebook have figures
        assert all(loaded.values()), f"{page}: images that did not load: {[k for k, v in loaded.items() if not v]}"

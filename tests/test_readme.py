"""README: the two set-up commands exist, its figures exist, and it links to the docs."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_two_setup_commands_are_make_targets_and_ci_runs_the_test_one():
    block = re.search(r"## Two commands.*?```bash\n(.*?)```", README, re.S)
    assert block, "README has no 'Two commands' block"
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()
                if line.split("#")[0].strip()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), target
    # The demo installs then runs the built-in example; the test target runs pytest.
    assert re.search(r"^demo: install\n\t\$\(BIN\)/meeg-inverse demo", makefile, re.M)
    assert re.search(r"^test: install-test\n\t\$\(BIN\)/python -m pytest", makefile, re.M)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci


def test_readme_images_exist_and_include_the_real_sample_data():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert images
    missing = [p for p in images if not (ROOT / p).is_file()]
    assert not missing, f"README images that do not exist: {missing}"
    # Figures produced from the real MNE sample data (scripts/make_doc_figures.sh).
    assert any("sample_right_auditory" in p for p in images), images


def test_readme_links_to_the_docs():
    links = re.findall(r"\]\((docs/[^)]+)\)", README)
    assert "docs/index.md" in links
    for link in links:
        path, _, anchor = link.partition("#")
        assert (ROOT / path).is_file(), link
        if anchor:  # a section of the page: one of its headings, as GitHub names it
            headings = re.findall(r"^#+\s+(.+)$", (ROOT / path).read_text(encoding="utf-8"),
                                  re.M)
            slugs = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
                     for h in headings}
            assert anchor in slugs, (link, sorted(slugs))


def test_install_guide_gives_the_same_two_commands():
    guide = (ROOT / "docs" / "guide" / "install.md").read_text(encoding="utf-8")
    assert re.search(r"^make demo\b", guide, re.M) and re.search(r"^make test\b", guide, re.M)

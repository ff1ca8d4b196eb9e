"""Small Sphinx extension for the meeg-inverse docs.

``cli-reference`` directive
    Renders ``meeg-inverse --help`` and the ``--help`` of every subcommand of
    :func:`meeg_inverse.cli.build_parser`, one section per subcommand, so the
    CLI reference can never drift from the parser.  The sections nest under
    the section the directive is in.

Optional pages
    Some pages (``sure.md``, ``solvers.md``, ...) are written by others and may
    not exist yet.  In the Markdown/reST source of any page, a block

    .. code-block:: text

        <!-- if-exists: sure.md -->
        ...kept only when docs/sure.md exists...
        <!-- else -->
        ...kept only when it does not...
        <!-- endif -->

    is resolved on ``source-read`` (the markers are HTML comments, so the
    Markdown still reads well unprocessed).  This is how toctrees and links
    point at those pages without breaking a ``-W`` build when one is missing.
"""

import argparse
import re
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive

_BLOCK = re.compile(
    r"<!--\s*if-exists:\s*(?P<path>[^\s]+)\s*-->\n?(?P<yes>.*?)"
    r"(?:<!--\s*else\s*-->\n?(?P<no>.*?))?<!--\s*endif\s*-->\n?",
    re.DOTALL)


def subcommands(parser):
    """``{name: subparser}`` of an argparse parser, in definition order."""
    for action in parser._actions:  # argparse has no public accessor
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            return {name: (sub, helps.get(name)) for name, sub in action.choices.items()}
    return {}


class CliReference(Directive):
    """``.. cli-reference::`` — every subcommand's ``--help``."""

    has_content = False

    def run(self):
        from meeg_inverse import cli

        env = self.state.document.settings.env
        env.note_dependency(cli.__file__)  # rebuild the page when the parser changes
        parser = cli.build_parser()
        intro = nodes.paragraph()
        intro += nodes.literal(text="meeg-inverse --help")
        intro += nodes.Text(":")
        out = [intro,
               nodes.literal_block(text=parser.format_help().rstrip(), language="text")]
        for name, (sub, helptext) in subcommands(parser).items():
            section_id = f"cli-{name}"
            section = nodes.section(ids=[section_id], names=[f"meeg-inverse {name}"])
            section += nodes.title(text=f"meeg-inverse {name}")
            if helptext:
                section += nodes.paragraph(text=helptext[0].upper() + helptext[1:] + ".")
            section += nodes.literal_block(text=sub.format_help().rstrip(), language="text")
            self.state.document.note_implicit_target(section)
            out.append(section)
        return out


def resolve_optional_blocks(app, docname, source):
    srcdir = Path(app.srcdir)
    doc_dir = (srcdir / docname).parent

    def repl(match):
        rel = match.group("path")
        exists = (doc_dir / rel).exists() or (srcdir / rel).exists()
        return match.group("yes") if exists else (match.group("no") or "")

    source[0] = _BLOCK.sub(repl, source[0])


# Set notation such as ``|S|`` (the size of a support) written outside double
# backquotes in a docstring is read by reST as a substitution reference and
# fails a -W build ("Undefined substitution referenced").  The package never
# uses reST substitutions, so such text is escaped before parsing.  Known
# instance: the module docstring of meeg_inverse/sure.py ("(size |S|·n_orient)
# plus a rank-|S| correction"); reported upstream, the escape keeps the build
# green and renders the text as written.
_SUBST = re.compile(r"(?<![\\\w|])\|(\w{1,3})\|(?![\w|])")


def escape_set_bars(app, what, name, obj, options, lines):
    for i, line in enumerate(lines):
        if "|" not in line or line.lstrip().startswith(("|", "+")):  # leave tables alone
            continue
        parts = line.split("``")
        # even parts are outside inline literals
        lines[i] = "``".join(_SUBST.sub(r"\\|\1\\|", p) if k % 2 == 0 else p
                             for k, p in enumerate(parts))


def setup(app):
    app.add_directive("cli-reference", CliReference)
    app.connect("source-read", resolve_optional_blocks)
    app.connect("autodoc-process-docstring", escape_set_bars)
    return {"version": "0.1", "parallel_read_safe": True, "parallel_write_safe": True}

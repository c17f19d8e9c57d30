"""The README is what a new user reads first: it must stay true to the code."""

from __future__ import annotations

from pathlib import Path

import msgspec

from contract.settings import Settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_the_readme_opens_with_the_two_commands():
    """The first code block holds `make demo` and `make test`."""
    first_block = README.split("```")[1]
    assert "make demo" in first_block
    assert "make test" in first_block


def test_every_setting_is_in_the_configuration_table():
    """Each environment variable the code reads appears in the README's table."""
    table = README.split("## Configuration")[1].split("\n## ")[0]
    missing = [f.encode_name for f in msgspec.structs.fields(Settings) if f"`{f.encode_name}`" not in table]
    assert missing == []

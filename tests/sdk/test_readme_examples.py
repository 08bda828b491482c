"""The README's Python examples, run as written (only the gateway's address replaced)."""

import contextlib
import io
import os
import re
from pathlib import Path

BASE = os.environ["APIPROXY_URL"]
README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_the_readme_python_examples_run_against_the_gateway():
    blocks = python_blocks()
    assert len(blocks) >= 3, "the README's Python examples were found"
    namespace = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for block in blocks:
            # One namespace: later blocks use the client an earlier one made.
            exec(block.replace("http://127.0.0.1:8000", BASE), namespace)
    assert printed.getvalue().count("Hello from openai-mock!") >= 4, printed.getvalue()

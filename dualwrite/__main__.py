"""``python -m dualwrite relay catalog``: the dual-write CLI without the rest of strangler."""

from dualwrite.cli import app

app(prog_name="strangler dualwrite")

"""Regenerate the Python stubs in client/notigate_client/_proto from proto/.

Usage: python tools/gen_proto.py [OUT_DIR]   (default: the committed location)

protoc writes absolute imports (``from notigate.v1 import ...``) that would
collide with the server package named ``notigate``; they are rewritten to
relative imports so the stubs live privately inside the client package.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
DEFAULT_OUT = ROOT / "client" / "notigate_client" / "_proto"
HEADER = "# Generated from proto/ by tools/gen_proto.py. DO NOT EDIT.\n"
ABSOLUTE_IMPORT = re.compile(r"^from notigate\.v1 import (\w+)", re.MULTILINE)


def generate(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    # protoc finds the mypy plugins on PATH; they sit beside this interpreter.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    include = str(Path(protoc.__file__).parent / "_proto")
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written: list[Path] = []
    for path in sorted(out.rglob("*")):
        if path.suffix not in (".py", ".pyi"):
            continue
        text = ABSOLUTE_IMPORT.sub(r"from . import \1", path.read_text())
        if not text.startswith(HEADER):
            text = HEADER + text
        path.write_text(text)
        written.append(path)
    for pkg in (out, *[d for d in out.rglob("*") if d.is_dir() and d.name != "__pycache__"]):
        init = pkg / "__init__.py"
        if not init.exists():
            init.write_text(HEADER)
            written.append(init)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    for p in generate(target):
        print(p.relative_to(target))

"""Size of the cloud assembly (``cdk.out``) per asset, zipped and unzipped, and its table in docs/cloud.md.

The pipeline's synth step hands ``cdk.out`` to the CloudFormation deploy actions as one input
artifact, and CodePipeline caps that at 256 MB ("Quotas in AWS CodePipeline", maximum size of
input artifacts for AWS CloudFormation actions; a fixed quota). The test in
tests/cdk/test_app_synth.py measures a real ``python app.py`` and fails past ``BUDGET_MB``
or when the table in docs/cloud.md is stale; ``python -m py_cdk.assembly_size`` synthesizes
and rewrites that table.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DOC = PROJECT_ROOT / "docs" / "cloud.md"
BEGIN, END = "<!-- assembly-size:begin -->", "<!-- assembly-size:end -->"
LIMIT_MB = 256  # CodePipeline: input artifact of a CloudFormation action
BUDGET_MB = 200  # ours, unzipped (the zipped artifact is far smaller): 56 MB of room under the limit
MB = 2**20


@dataclass(frozen=True)
class AssetSize:
    what: str
    unzipped: int
    zipped: int

    def row(self) -> str:
        return f"| {self.what} | {self.unzipped / MB:.1f} | {self.zipped / MB:.1f} |"


def _label(path: Path) -> str:
    """What an ``asset.<hash>`` entry is, from its content (the hash names say nothing)."""
    if path.is_dir():
        names = {p.name for p in path.iterdir()}
        if "transform.py" in names:
            return "transform Lambda package"
        if "candles.py" in names:
            return "extractor Lambda package (candles, orders)"
        if any(n.startswith("binance_lake-") for n in names):
            return "core wheel (Glue)"
        if any(n.startswith("boto3-") and n.endswith(".whl") for n in names):
            return "pinned wheels (Glue)"
        if "index.py" in names:
            return "BucketDeployment handler (aws-cdk-lib)"
        if "index.js" in names:
            return "custom-resource handler (aws-cdk-lib)"
    elif path.suffix == ".py":
        return "Glue job scripts"
    elif path.suffix == ".zip":
        return "AWS CLI layer of BucketDeployment (aws-cdk-lib)"
    return "other assets"


def _zipped_size(files: List[Path], root: Path) -> int:
    """Deflated as CodePipeline's zip of the artifact would be (one archive per entry here)."""
    with tempfile.TemporaryFile() as handle:
        with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as zf:
            for path in files:
                zf.write(path, path.relative_to(root).as_posix())
        handle.seek(0, os.SEEK_END)
        return handle.tell()


def measure(outdir: Path) -> List[AssetSize]:
    """Sizes grouped by what they are; templates, manifests and tree.json are one row."""
    groups: Dict[str, List[Path]] = {}
    for entry in sorted(outdir.iterdir()):
        label = _label(entry) if entry.name.startswith("asset.") else "templates, manifests, tree.json"
        groups.setdefault(label, []).extend(sorted(p for p in ([entry] if entry.is_file() else entry.rglob("*"))
                                                   if p.is_file()))
    sizes = [AssetSize(label, sum(p.stat().st_size for p in files), _zipped_size(files, outdir))
             for label, files in groups.items()]
    return sorted(sizes, key=lambda s: -s.unzipped)


def table(sizes: List[AssetSize]) -> str:
    total = AssetSize("**whole cloud assembly**", sum(s.unzipped for s in sizes), sum(s.zipped for s in sizes))
    return "\n".join(["| asset | unzipped (MB) | zipped (MB) |", "|---|---|---|",
                      *(s.row() for s in sizes), total.row()])


def documented(doc: Path = DOC) -> Dict[str, tuple]:
    """{asset: (unzipped MB, zipped MB)} from the table in docs/cloud.md."""
    text = doc.read_text()
    section = text[text.index(BEGIN):text.index(END)]
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+) \|$", section, re.M)
    return {what: (float(u), float(z)) for what, u, z in rows}


def write_doc(sizes: List[AssetSize], doc: Path = DOC) -> None:
    text = doc.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    doc.write_text(text[:start] + "\n" + table(sizes) + "\n" + text[end:])


def synth(outdir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDK_", "CONTEXT_OVERFLOW"))}
    env.update(CDK_OUTDIR=str(outdir), JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20")
    run = subprocess.run([sys.executable, "app.py"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                         check=False, timeout=900)
    if run.returncode:
        raise RuntimeError((run.stdout + run.stderr)[-4000:])


def main(argv: List[str]) -> int:
    """``python -m py_cdk.assembly_size [CDK_OUT]``: measure (synthesizing if no directory is
    given) and rewrite the table in docs/cloud.md."""
    outdir: Optional[Path] = Path(argv[0]) if argv else None
    with tempfile.TemporaryDirectory() as tmp:
        if outdir is None:
            outdir = Path(tmp)
            synth(outdir)
        sizes = measure(outdir)
    write_doc(sizes)
    print(table(sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

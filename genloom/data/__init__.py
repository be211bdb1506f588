"""Data pipelines of every modality: reading, checking, splitting and batching a user's files or a
bundled dataset.

The bundled datasets live in the repository's `data/` (each with its SOURCE.md: origin and license);
`genloom/bundled` links to it, and wheels carry a copy there, so an installed genloom finds them too.
"""

from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[1] / "bundled"  # the bundled datasets (a link to data/ in the repo)

"""Zip Lake's Superset dashboards, or zip and import them now (infra/superset_assets/__init__.py).

    .lake/venvs/core/bin/python -m infra.superset_assets /tmp/lake_dashboards.zip   # just the zip
    .lake/venvs/core/bin/python -m infra.superset_assets --import                    # zip + import now

The command lives apart from the bundle code because importing goes through
``infra.apps.Superset``, which uses the bundle code: imports run one way, here -> apps -> bundle.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from infra.apps import Superset
from infra.superset_assets import build_zip
from lake.config import get_settings


def main() -> None:
    ap = argparse.ArgumentParser(
        prog="python -m infra.superset_assets",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "zip",
        nargs="?",
        type=Path,
        help="where to write the zip (default ./lake_dashboards.zip; --import writes it under the state dir)",
    )
    ap.add_argument("--import", dest="do_import", action="store_true", help="import it into Superset now")
    a = ap.parse_args()
    if a.do_import:
        print(Superset("superset", get_settings()).import_dashboards(force=True))
    else:
        print(build_zip(a.zip or Path("lake_dashboards.zip")))


if __name__ == "__main__":
    main()

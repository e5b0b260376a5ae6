"""Import Lake's dashboard bundle into Superset, overwriting its datasets, charts and dashboards.

Runs in Superset's venv with Superset's environment (infra/apps.py, Superset.env); `lake up`
runs it through Superset.import_dashboards whenever superset/assets changes. By hand:

    .lake/venvs/core/bin/python -m infra.superset_assets --import

or, with that environment set:

    .lake/venvs/superset/bin/python superset/import_assets.py lake_dashboards.zip \\
        --user admin --database-uri trino://lake@127.0.0.1:8085/lake

Not `superset import-dashboards`: in 6.1 it overwrites the dashboards only, importing their
charts and datasets with overwrite=False, so an edited chart would keep its old version.
The bundle's database is mapped onto the one of the same name that `lake up` registered
(`superset set-database-uri`), whatever its uuid; created with ``--database-uri`` if missing.
"""

from __future__ import annotations

import argparse
from zipfile import ZipFile

import yaml


def adopt_database(contents: dict[str, str], uri: str) -> dict[str, str]:
    """Give the bundle's database the uuid of the existing one of that name (or keep its own), and ``uri``."""
    from superset.extensions import db
    from superset.models.core import Database

    out = dict(contents)
    for path, text in contents.items():
        if not path.startswith("databases/"):
            continue
        config = yaml.safe_load(text)
        existing = db.session.query(Database).filter_by(database_name=config["database_name"]).one_or_none()
        old, new = config["uuid"], str(existing.uuid) if existing else config["uuid"]
        out[path] = yaml.safe_dump({**config, "uuid": new, "sqlalchemy_uri": uri}, sort_keys=False)
        for other, body in out.items():
            if other.startswith("datasets/"):
                out[other] = body.replace(old, new)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", help="the zip infra/superset_assets.py builds")
    ap.add_argument("--user", required=True, help="owner of what is imported (the admin)")
    ap.add_argument("--database-uri", required=True, help="SQLAlchemy URI of Trino's lake catalog")
    a = ap.parse_args()

    from superset.app import create_app

    with create_app().app_context():
        from superset.commands.chart.importers.v1 import ImportChartsCommand
        from superset.commands.dashboard.importers.v1 import ImportDashboardsCommand
        from superset.commands.dataset.importers.v1 import ImportDatasetsCommand
        from superset.commands.importers.v1.utils import get_contents_from_bundle
        from superset.extensions import security_manager
        from superset.utils.core import override_user

        with ZipFile(a.bundle) as z:
            contents = adopt_database(get_contents_from_bundle(z), a.database_uri)
        user = security_manager.find_user(username=a.user)
        if user is None:
            raise SystemExit(f"no Superset user {a.user!r}")
        with override_user(user):
            for command in (ImportDatasetsCommand, ImportChartsCommand, ImportDashboardsCommand):
                command(contents, overwrite=True).run()
        print(
            f"imported {sum(p.startswith('dashboards/') for p in contents)} dashboards, "
            f"{sum(p.startswith('charts/') for p in contents)} charts, "
            f"{sum(p.startswith('datasets/') for p in contents)} datasets"
        )


if __name__ == "__main__":
    main()

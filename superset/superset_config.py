"""Superset configuration for Lake (SUPERSET_CONFIG_PATH points here; see infra/apps.py).

Secrets and the metadata database come from the environment that `lake up` (or
docker-compose) sets; nothing secret lives in this file.
"""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ["LAKE_SUPERSET_DATABASE_URI"]
ROW_LIMIT = 50_000
SQLLAB_TIMEOUT = 300
FEATURE_FLAGS = {"DASHBOARD_NATIVE_FILTERS": True, "ENABLE_TEMPLATE_PROCESSING": False}
# Lake's dashboards are imported from superset/ by `lake up`; no examples.
SUPERSET_LOAD_EXAMPLES = False

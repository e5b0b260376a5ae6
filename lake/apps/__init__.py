"""Applications built on the Lake library core: the demo and its learning loop, the layer
runner, Airflow orchestration, the capacity calculator, scratch lanes for tooling, and the
report tables the CLI and the demo share. The core (`lake.*` outside `apps` and `cli`) never
imports these; tests/test_imports.py checks it.
"""

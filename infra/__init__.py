"""The local stack without Docker: installers (``install``), service definitions
(``services``) and a small process supervisor (``procs``). Driven by ``lake up``."""

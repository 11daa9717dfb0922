"""The web console: a Vue single-page app (src/, built by Vite into dist/) served by the gateway.

`build.py` builds it (standard library only, so devctl and the Makefile can run it before the
virtualenv's packages matter); `blueprint.py` serves dist/ at `/` and `/console/...`.
"""

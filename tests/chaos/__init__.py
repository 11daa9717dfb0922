"""The fault suite: the whole system on a broker node of its own, a lead load with a ledger, and
injected faults (broker kill -9, kill -9 and SIGTERM of every process, poison messages).

    make chaos                                  # every scenario, on SQLite and on PostgreSQL
    .venv/bin/python -m tests.chaos --help      # choose scenarios, leads, concurrency

tests/chaos/test_chaos.py runs a shorter form inside `make test`.
"""

"""The shared kernel: what every service must agree on, beside the platform.

- `schemas`: the strict base schema, the caller's scope and the page of a list RPC;
- `naming`: the constraint naming convention of every service's tables;
- `normalise`: phone numbers, e-mail addresses and company names, so that a lead and the
  customer it becomes have the same duplicate keys.

Business rules of one service do not belong here; rules that two services must apply alike do.
"""

"""The sales numbers: custom fields, quotas, funnel, forecast and its snapshots, quota
performance, channels, dormant customers, drill-down, customer insights, import and export.

  contract.py     RPC payload schemas and the constants callers build payloads by
  usecases/       transactions: custom fields, quotas, reports, snapshots, importing, exporting
  queries/        the SQL of the figures (one module a figure), the roll-up triggers
  domain/         pure rules: figures (periods, forecast, RFM, health), custom fields,
                  import rows and import jobs
  models.py       the numbers' tables, on the metadata of services/sales/models.py

Its entrypoints are in services/sales/service.py, with the rest of the service's.
Dependencies point one way: service.py -> usecases -> queries -> models -> the core's models;
the domain depends on the contract only (and the core's account rules); nothing of the core
imports this package but service.py and the core's list use cases (the custom-field
hooks).
"""

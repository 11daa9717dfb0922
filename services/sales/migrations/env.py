import services.sales.numbers.models  # noqa: F401 - the numbers' tables, on the same metadata
from services.sales.models import metadata
from shared.migrations import run_env

run_env(metadata)

"""One naming convention for every service's constraints and indexes, so migrations name them
alike and a constraint can be dropped by a name that is known in advance."""

from __future__ import annotations

from sqlalchemy import MetaData

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata() -> MetaData:
    """The MetaData of a service's tables, with the naming convention."""
    return MetaData(naming_convention=NAMING_CONVENTION)

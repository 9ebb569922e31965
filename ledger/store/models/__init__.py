"""All tables. Importing this package registers every model on `Base.metadata` (Alembic relies on it)."""

import importlib
import pkgutil

from ledger.store.base import Base

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Base"]

"""Errors raised by the warehouse; each message names the file and what to do."""


class WarehouseError(Exception):
    """Base class for warehouse problems."""


class WarehouseInUseError(WarehouseError):
    """Another process holds the DuckDB file's write lock."""


class WarehouseUnavailableError(WarehouseError):
    """The DuckDB file cannot be opened (missing folder, permissions, corrupt file)."""


class QueryError(WarehouseError):
    """A user's SQL failed."""


class ExportError(WarehouseError):
    """An export cannot be written where it was asked to go."""


class WarehouseWriteError(WarehouseError):
    """The warehouse could not be written (disk full, read-only file)."""

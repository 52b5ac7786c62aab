"""qsplit: split one PgQ source queue into many target queues, exactly once."""

__version__ = "0.1.0"

"""Storage: database engine, tables' shared metadata, migrations, clock and media storage."""

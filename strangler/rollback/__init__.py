"""Roll days of the migration back in every store, with snapshot, validation, report and undo."""

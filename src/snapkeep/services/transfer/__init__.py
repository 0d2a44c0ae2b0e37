"""Transfer: snapshot export and import, and the export directory's format."""

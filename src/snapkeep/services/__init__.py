"""Use cases: the only orchestrator. Front ends call these; these call policy, catalog, engines."""

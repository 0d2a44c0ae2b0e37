"""Activities: the queue, its workers, the per-environment lock, the recorder engines report to."""

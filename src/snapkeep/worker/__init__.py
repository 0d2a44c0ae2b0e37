"""Background processes: the detached activity runner and the pause guard."""

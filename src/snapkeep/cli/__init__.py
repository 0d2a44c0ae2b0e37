"""The command line: parse, call one service function, present. Nothing else."""

"""Data movers: one package per kind of data (mysql, volumes); they never import each other."""

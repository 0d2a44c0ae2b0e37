"""The generative tests' generators (schemas, data, damage, trees), feature switches and
fingerprints: tests/generative draws from them."""

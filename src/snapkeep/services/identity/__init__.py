"""Identity: users, roles, tokens, passwords and sign-in limits."""

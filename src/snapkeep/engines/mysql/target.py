"""Where a database lives: the connection facts the config layer builds from a URL."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MySQLTarget:
    """One database on a MySQL/MariaDB server (``mysql://user[:pass]@host[:port]/db``)."""

    host: str
    port: int
    user: str
    password: str | None = field(repr=False)
    database: str
    unix_socket: str | None = None

    def describe(self) -> str:
        """A human-readable name for messages; never contains the password."""
        text = f"mysql://{self.user}@{self.host}:{self.port}/{self.database}"
        if self.unix_socket:
            text += f"?socket={self.unix_socket}"
        return text

    def with_database(self, database: str) -> MySQLTarget:
        return MySQLTarget(self.host, self.port, self.user, self.password, database,
                           self.unix_socket)

"""snapkeep.toml: found, parsed and validated into typed objects. No raw dicts past here.

The face of the package: callers import from ``snapkeep.config``, never from its modules.
``settings`` holds the typed dataclasses and their defaults, ``schema`` the declarative
``SCHEMA`` every table and key is first checked against (nothing unknown or mistyped is
ever ignored), ``values`` the checks of single values, ``load`` finding the file and
building a ``ProjectConfig`` from it. Project state lives in ``.snapkeep/`` beside it.
"""

from snapkeep.config.load import find_config, load_config, parse_config
from snapkeep.config.schema import (
    ANY_NAME,
    COMMANDS,
    ENVIRONMENT,
    NUMBER,
    PATHS,
    SCHEMA,
    STRING,
    TABLE,
    WHOLE,
    Kind,
    check_schema,
    table_header,
)
from snapkeep.config.settings import (
    CATALOG_FILE,
    CATALOG_SCHEMES,
    CONFIG_NAME,
    DEFAULT_COMPRESSION_LEVEL,
    DEFAULT_HOOK_TIMEOUT,
    DEFAULT_KEY_FILE,
    DEFAULT_RESTORE_WINDOW_DAYS,
    ENV_TYPES,
    HOOK_EVENTS,
    HOOK_POLICIES,
    PLANS,
    RETENTION_KEYS,
    SHARED_STATE_DIR,
    STATE_DIR,
    STORAGE_OPTIONS,
    DatabaseURL,
    EnvironmentConfig,
    Hooks,
    ProjectConfig,
    ReplicaConfig,
    WebhookConfig,
    redact_url,
)
from snapkeep.config.values import CRON_EXAMPLE, CRON_MACROS, ENV_NAME, ENV_NAME_RULE, safe_name

__all__ = [
    "ANY_NAME", "CATALOG_FILE", "CATALOG_SCHEMES", "COMMANDS", "CONFIG_NAME", "CRON_EXAMPLE",
    "CRON_MACROS", "DEFAULT_COMPRESSION_LEVEL", "DEFAULT_HOOK_TIMEOUT", "DEFAULT_KEY_FILE",
    "DEFAULT_RESTORE_WINDOW_DAYS", "ENVIRONMENT", "ENV_NAME", "ENV_NAME_RULE", "ENV_TYPES",
    "HOOK_EVENTS", "HOOK_POLICIES", "NUMBER", "PATHS", "PLANS", "RETENTION_KEYS", "SCHEMA",
    "SHARED_STATE_DIR", "STATE_DIR", "STORAGE_OPTIONS", "STRING", "TABLE", "WHOLE", "DatabaseURL",
    "EnvironmentConfig", "Hooks", "Kind", "ProjectConfig", "ReplicaConfig", "WebhookConfig",
    "check_schema",
    "find_config", "load_config", "parse_config", "redact_url", "safe_name", "table_header",
]

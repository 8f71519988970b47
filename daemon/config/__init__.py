"""The daemon's configuration: one YAML file, validated at start, every error naming file, line and YAML path.

Each `connectors:` entry holds its connector's own keys (validated by that connector's model) plus a
`routing:` block that belongs to the daemon. Secrets follow one rule everywhere (`connectors.secrets`):
`${ENV}` inside any string value, and `<key>_file` for a connector's secret keys, `state.url_file` and
`api.tokens_file`.

Layout: `schema` (the sections), `yaml_lines` (parsing with the line map), `messages` (validation
errors as file:line:key lines), `loading` (the order: YAML, secrets, connectors, schema).
"""

from daemon.config.loading import default_config, load_config, load_structure
from daemon.config.schema import (
    RESTART_ONLY,
    ApiSection,
    Config,
    ConnectorEntry,
    LabelRouting,
    ModelSection,
    PrivacySection,
    RetrainSection,
    RoutingSection,
    StateSection,
    restart_only_changes,
    state_dir,
)

__all__ = [
    "RESTART_ONLY",
    "ApiSection",
    "Config",
    "ConnectorEntry",
    "LabelRouting",
    "ModelSection",
    "PrivacySection",
    "RetrainSection",
    "RoutingSection",
    "StateSection",
    "default_config",
    "load_config",
    "load_structure",
    "restart_only_changes",
    "state_dir",
]

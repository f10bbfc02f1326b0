from tests.trials.runner.conftest import (  # noqa: F401 - fixtures shared with the runner tests
    bwrap_config,
    config,
    fallback_config,
    kind,
    state_dir,
    uid_base,
)

"""`uvicorn session_service.main:app` entry point (settings from the environment).

Each process configures logging once, here or in the CLI; `create_app` never does.
"""

from session_service.app import create_app
from session_service.config import load_settings
from session_service.observability.logging import configure_logging

settings = load_settings()
configure_logging(settings.log_level, settings.effective_log_format.value)
app = create_app(settings)

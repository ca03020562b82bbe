"""`uvicorn session_service.main:app` entry point (settings from the environment)."""

from session_service.app import create_app

app = create_app()

"""The admin web console under ``/admin``: ``gateway.console.setup.setup_console(app)``."""

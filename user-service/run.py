"""user-service: `python run.py migrate` (schema + first admin), `python run.py serve` (gunicorn), `python run.py dev`."""

from app import create_app, services
from servicekit.runner import main


def ensure_first_admin(app):
    config = app.config["SERVICE"]
    if config.admin_email and config.admin_password:
        if services.ensure_admin(config.admin_email, config.admin_password):
            print(f"user-service: created the first admin {config.admin_email}")
        else:
            print(f"user-service: {config.admin_email} already has an account; it is left as it is")
        if not services.active_admin_exists():
            print(f"user-service: WARNING: no active administrator exists ({config.admin_email} is not one)")


if __name__ == "__main__":
    main(create_app, at_start=ensure_first_admin)

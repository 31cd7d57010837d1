"""room-service: `python run.py migrate`, `python run.py serve` (gunicorn), `python run.py dev`."""

from app import create_app
from servicekit.runner import main

if __name__ == "__main__":
    main(create_app)

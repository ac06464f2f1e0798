"""The app for granian (the experiment's `bench_server: granian`), imported in granian's worker:
the app's own start-up (init_app: directories, database, its analytics thread) runs there, as
gunicorn's post_worker_init runs it in the role's workers."""

from app import app, init_app  # noqa: F401  (granian serves `granian_wsgi:app`)

init_app()

"""The routers of the HTTP service, one per resource: :mod:`~.sessions` (the sessions, their transitions and
history), :mod:`~.seed` (the compatibility routes ``/session_manager/sessions.start|end``) and :mod:`~.health`
(health, readiness and metrics). Each module builds an ``APIRouter`` that ``create_app`` includes; the routers
import the shared modules of the package, never each other."""

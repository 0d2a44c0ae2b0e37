"""The REST API of ``snapkeep serve``: FastAPI routers over the services (DESIGN.md §2).

``create_app(base_ctx_factory)`` in ``snapkeep.api.app`` builds it. This package imports
services and below only; the CLI and the web console may import it.
"""

"""The domain: immutable models, the lifecycle definition, deadline rules and the event fold.

Imports only the standard library, pydantic and python-statemachine.
"""

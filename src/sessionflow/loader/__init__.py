"""Lifecycle definitions from data: a YAML or JSON document a team can review without reading Python.

::

    name: review
    version: 1
    states:
      draft: {initial: true}
      in_review: {}
      approved: {final: true}
      rejected: {final: true}
    events:
      submit:
        - {from: draft, to: in_review, cond: [has_title]}
      approve:
        - {from: in_review, to: approved, cond: [has_reviewer], unless: [is_author]}
      reject:
        - {from: [draft, in_review], to: rejected}
    timeouts:
      in_review: {after: 2h, event: reject, args: {reason: review timed out}}
    event_names: {submit: submitted}

Guard and validator names are bound to Python callables the program registers (:func:`guard` or a
``guards=`` mapping); a name with no callable is an error when the document is loaded, not later. The
document becomes an ordinary python-statemachine ``StateMachine`` class (so diagrams and the compiled
decision table work as for a class written in Python) inside a :class:`LifecycleDefinition`.

The format is :class:`LifecycleDocument`, a pydantic model (``sessionflow schema lifecycle`` prints its JSON
Schema). Files are read by :func:`read_document`, which scenario files share: UTF-8, at most
:data:`MAX_DOCUMENT_BYTES` (1 MiB), one YAML document without anchors, aliases or custom tags, nested at most
:data:`MAX_DOCUMENT_DEPTH` levels, no duplicate keys. Every mistake is a :class:`LifecycleDocumentError` that
lists each problem with the file, the key path (``timeouts.in_review.after``) and, for YAML, the line.

The package's modules, one job each: :mod:`~.reading` (bytes to a parsed document), :mod:`~.problems` (each
mistake located, and the error listing them), :mod:`~.validation` (a document checked against its format),
:mod:`~.values` (the value types and the base of the formats, which the scenario format shares),
:mod:`~.format` (the lifecycle format), :mod:`~.guards` (guards by name) and :mod:`~.building` (the
definition).
"""

from sessionflow.loader.building import definition_from_document, load_definition
from sessionflow.loader.format import LifecycleDocument, lifecycle_schema
from sessionflow.loader.guards import guard, import_modules, registered_guards
from sessionflow.loader.problems import (
    DocumentProblem,
    KeyPath,
    LifecycleDocumentError,
    Lines,
    describe_problems,
    ordered_problems,
    problems_dict,
)
from sessionflow.loader.reading import MAX_DOCUMENT_BYTES, MAX_DOCUMENT_DEPTH, read_document
from sessionflow.loader.validation import validate_document
from sessionflow.loader.values import (
    After,
    Document,
    Duration,
    JsonObject,
    Names,
    Timestamp,
    duration_field,
    json_schema,
    parse_duration,
)

__all__ = ["MAX_DOCUMENT_BYTES", "MAX_DOCUMENT_DEPTH", "After", "Document", "DocumentProblem", "Duration",
           "JsonObject", "KeyPath", "LifecycleDocument", "LifecycleDocumentError", "Lines", "Names", "Timestamp",
           "definition_from_document", "describe_problems", "duration_field", "guard", "import_modules",
           "json_schema", "lifecycle_schema", "load_definition", "ordered_problems", "parse_duration",
           "problems_dict", "read_document", "registered_guards", "validate_document"]

"""Tools for people, never shipped in the Lambda artifact.

- ``dryrun``: ``pipeline-dryrun`` (replays with no side effects) and ``--check`` (``check``, ``lint``);
- ``serve``: ``pipeline-serve``, the handler over HTTP as API Gateway would call it;
- ``events``: API Gateway events built from HTTP requests; ``localaws``: the contract's resources in an emulator;
- ``schema_export``: editor JSON Schemas; ``stamp``: the build's configuration stamp.

Their development-only dependencies are the ``tools`` extra (``pip install 'inbound-webhook-pipeline[tools]'``).
"""
